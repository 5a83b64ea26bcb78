"""The Kafka/Faust side: codec, app and agents, clients, CLI, dashboard."""
