import sys

from stream.cli.entry import main

sys.exit(main())
