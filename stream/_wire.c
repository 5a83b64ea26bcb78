/* What the worker does to every record on the wire, in C: an event's check (codec.py's
 * validate_event, its common case), a key's hash (output.py's murmur2) and a user record's
 * msgpack (codec.py's packed).
 *
 * clean_event(event, rules, latest_ts, catalog) returns the normalised event that
 * validate_event would return, for an event of the usual shape only: a dict whose ids are
 * short non-empty str, whose "categories" is a list of 1..max short non-empty str (or, with
 * catalog true, absent, as is "category": None, for the item catalog), whose event type is known
 * and whose ts (and weight, if any) are plain floats or ints in range. For anything else,
 * valid or not, it returns None and validate_event answers in Python: the reasons and
 * details of bad events stay defined in one place. tests/unit/test_wire_c.py checks that
 * every event it answers for gets exactly validate_event's answer.
 *
 * murmur2(key) is Kafka's default partitioner's hash of a bytes key, unsigned, as output.py's
 * Python definition computes it (tests/unit/test_output.py checks both against aiokafka's).
 *
 * rules (built once by codec.py from its constants): (max_id_chars, max_categories,
 * max_category_chars, reserved_category, reserved_user_prefix, event_types, max_weight),
 * event_types mapping every accepted name (aliases too) to the schema's name.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

static PyObject *K_USER, *K_ITEM, *K_CATS, *K_CAT, *K_TYPE, *K_TS, *K_WEIGHT;

typedef struct {
    Py_ssize_t max_id, max_cats, max_cat;
    PyObject *reserved, *prefix, *types;
    double max_weight;
} Rules;

static int
read_rules(PyObject *t, Rules *r)
{
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 7
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(t, 3))
        || !PyUnicode_CheckExact(PyTuple_GET_ITEM(t, 4))
        || !PyDict_CheckExact(PyTuple_GET_ITEM(t, 5))) {
        PyErr_SetString(PyExc_TypeError, "clean_event: rules as codec.py builds them");
        return 0;
    }
    r->max_id = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 0));
    r->max_cats = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 1));
    r->max_cat = PyLong_AsSsize_t(PyTuple_GET_ITEM(t, 2));
    r->reserved = PyTuple_GET_ITEM(t, 3);
    r->prefix = PyTuple_GET_ITEM(t, 4);
    r->types = PyTuple_GET_ITEM(t, 5);
    r->max_weight = PyFloat_AsDouble(PyTuple_GET_ITEM(t, 6));
    return !PyErr_Occurred();
}

/* A short, non-empty, exact str: what str(value) returns unchanged and no length check
 * refuses (at most 4 bytes a character). */
static int
short_str(PyObject *v, Py_ssize_t max_chars)
{
    return v != NULL && PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) > 0
           && PyUnicode_GET_LENGTH(v) <= max_chars;
}

/* float(value) for an exact float or int, as validate_event's _number reads it; 0 if the
 * value is of any other type or past float's range. */
static int
plain_number(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (!PyLong_CheckExact(v))
        return 0;
    *out = PyLong_AsDouble(v);
    if (*out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static PyObject *
get(PyObject *event, PyObject *key, int *failed)
{
    PyObject *v = PyDict_GetItemWithError(event, key);
    if (v == NULL && PyErr_Occurred())
        *failed = 1;
    return v;
}

/* The categories, as a new list, or NULL (with *failed on an error) when not plain. */
static PyObject *
plain_categories(PyObject *cats, const Rules *r, int *failed)
{
    if (cats == NULL || !PyList_CheckExact(cats))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(cats);
    if (n < 1 || n > r->max_cats)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(cats, i);
        if (!short_str(c, r->max_cat))
            return NULL;
        int reserved = PyUnicode_Compare(c, r->reserved);
        if (reserved == -1 && PyErr_Occurred()) {
            *failed = 1;
            return NULL;
        }
        if (reserved == 0)
            return NULL;
    }
    PyObject *out = PyList_GetSlice(cats, 0, n);
    if (out == NULL)
        *failed = 1;
    return out;
}

static PyObject *
clean_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Rules r;
    if (nargs != 4 || !read_rules(args[1], &r) || !PyFloat_CheckExact(args[2])
        || !PyBool_Check(args[3])) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "clean_event(event, rules, latest_ts, catalog)");
        return NULL;
    }
    int catalog = args[3] == Py_True;
    PyObject *event = args[0];
    double latest = PyFloat_AS_DOUBLE(args[2]), ts, weight = 0.0;
    int failed = 0, weighted = 0;
    if (!PyDict_CheckExact(event))
        Py_RETURN_NONE;
    PyObject *user = get(event, K_USER, &failed);
    PyObject *item = get(event, K_ITEM, &failed);
    PyObject *type = get(event, K_TYPE, &failed);
    PyObject *ts_obj = get(event, K_TS, &failed);
    PyObject *w_obj = get(event, K_WEIGHT, &failed);
    if (failed)
        return NULL;
    if (!short_str(user, r.max_id) || !short_str(item, r.max_id) || type == NULL
        || !PyUnicode_CheckExact(type) || ts_obj == NULL || !plain_number(ts_obj, &ts)
        || !isfinite(ts) || ts < 0 || ts > latest)
        Py_RETURN_NONE;
    int reserved = PyUnicode_Tailmatch(user, r.prefix, 0, PY_SSIZE_T_MAX, -1);
    if (reserved == -1)
        return NULL;
    PyObject *canonical = PyDict_GetItemWithError(r.types, type);
    if (canonical == NULL && PyErr_Occurred())
        return NULL;
    if (reserved || canonical == NULL)
        Py_RETURN_NONE;
    if (w_obj != NULL && w_obj != Py_None) {
        if (!plain_number(w_obj, &weight) || !isfinite(weight) || weight < 0
            || weight > r.max_weight)
            Py_RETURN_NONE;
        weighted = 1;
    }
    PyObject *cats_in = get(event, K_CATS, &failed), *cats;
    PyObject *single = cats_in == NULL ? get(event, K_CAT, &failed) : NULL;
    if (failed)
        return NULL;
    if (cats_in == NULL && catalog && single == NULL) /* the catalog will name them */
        cats = Py_NewRef(Py_None);
    else if ((cats = plain_categories(cats_in, &r, &failed)) == NULL) {
        if (failed)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out = PyDict_New();
    PyObject *ts_out = PyFloat_FromDouble(ts);
    PyObject *w_out = weighted ? PyFloat_FromDouble(weight) : NULL;
    if (out == NULL || ts_out == NULL || (weighted && w_out == NULL)
        || PyDict_SetItem(out, K_USER, user) < 0 || PyDict_SetItem(out, K_ITEM, item) < 0
        || PyDict_SetItem(out, K_CATS, cats) < 0 || PyDict_SetItem(out, K_TYPE, canonical) < 0
        || PyDict_SetItem(out, K_TS, ts_out) < 0
        || (weighted && PyDict_SetItem(out, K_WEIGHT, w_out) < 0))
        Py_CLEAR(out);
    Py_DECREF(cats);
    Py_XDECREF(ts_out);
    Py_XDECREF(w_out);
    return out;
}

static PyObject *
murmur2(PyObject *module, PyObject *key)
{
    if (!PyBytes_CheckExact(key)) {
        PyErr_SetString(PyExc_TypeError, "murmur2: bytes only");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(key);
    Py_ssize_t n = PyBytes_GET_SIZE(key);
    const uint32_t m = 0x5BD1E995;
    uint32_t h = 0x9747B28Cu ^ (uint32_t)n;
    Py_ssize_t words = n >> 2;
    for (Py_ssize_t i = 0; i < words; i++) {
        const unsigned char *b = data + 4 * i;
        uint32_t k = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16
                     | (uint32_t)b[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h = (h * m) ^ k;
    }
    const unsigned char *tail = data + 4 * words;
    switch (n & 3) {
    case 3:
        h ^= (uint32_t)tail[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8;
        /* fall through */
    case 1:
        h = (h ^ tail[0]) * m;
    }
    h ^= h >> 13;
    h *= m;
    return PyLong_FromUnsignedLong(h ^ (h >> 15));
}


/* ---- msgpack, as msgpack's Packer(use_bin_type=True) writes it ----------------------- */

/* packed(obj): the bytes msgpack's Packer(use_bin_type=True) writes for obj made of exact
 * None, bool, int (64-bit), float, str, bytes, list, tuple and dict; TypeError for anything
 * else (codec.py's msgpack_pack then answers, errors included). Written into one buffer kept
 * between calls (the GIL is held throughout and no Python code runs), then copied into a
 * bytes object of exactly its size, as the Packer does. */
#define PACK_DEPTH 64

static int
pack_refuse(void)
{
    PyErr_SetString(PyExc_TypeError, "packed: exact None, bool, int, float, str, bytes, list, "
                                     "tuple and dict only");
    return -1;
}

typedef struct {
    unsigned char *data;
    Py_ssize_t size, cap;
} Out;

static Out BUFFER = {NULL, 0, 0};

/* Room for n more bytes; -1 (MemoryError) when there is none. */
static int
room(Out *o, Py_ssize_t n)
{
    if (o->size + n <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->size + n) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    unsigned char *data = PyMem_Realloc(o->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->cap = cap;
    return 0;
}

static int
put(Out *o, const void *data, Py_ssize_t n)
{
    if (room(o, n) < 0)
        return -1;
    memcpy(o->data + o->size, data, (size_t)n);
    o->size += n;
    return 0;
}

static int
put_byte(Out *o, unsigned char b)
{
    return put(o, &b, 1);
}

static int
put_be(Out *o, unsigned char head, uint64_t v, int bytes)
{
    unsigned char buf[9];
    buf[0] = head;
    for (int i = 0; i < bytes; i++)
        buf[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    return put(o, buf, 1 + bytes);
}

static int
put_head(Out *o, Py_ssize_t n, unsigned char fix, Py_ssize_t fix_max, unsigned char head8,
         unsigned char head16, unsigned char head32)
{
    if (n < fix_max)
        return put_byte(o, (unsigned char)(fix | n));
    if (head8 && n < 256)
        return put_be(o, head8, (uint64_t)n, 1);
    if (n < 65536)
        return put_be(o, head16, (uint64_t)n, 2);
    if (n <= 0xffffffffLL)
        return put_be(o, head32, (uint64_t)n, 4);
    return pack_refuse();
}

static int
pack_int(Out *o, PyObject *obj)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow > 0) { /* past int64: uint64 still, as the Packer does */
        unsigned long long u = PyLong_AsUnsignedLongLong(obj);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return pack_refuse();
        }
        return put_be(o, 0xcf, u, 8);
    }
    if (overflow < 0 || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return pack_refuse();
    }
    if (v >= 0) {
        if (v < 128)
            return put_byte(o, (unsigned char)v);
        if (v < 256)
            return put_be(o, 0xcc, (uint64_t)v, 1);
        if (v < 65536)
            return put_be(o, 0xcd, (uint64_t)v, 2);
        if (v <= 0xffffffffLL)
            return put_be(o, 0xce, (uint64_t)v, 4);
        return put_be(o, 0xcf, (uint64_t)v, 8);
    }
    if (v >= -32)
        return put_byte(o, (unsigned char)(0xe0 | (v + 32)));
    if (v >= -128)
        return put_be(o, 0xd0, (uint64_t)v, 1);
    if (v >= -32768)
        return put_be(o, 0xd1, (uint64_t)v, 2);
    if (v >= -2147483648LL)
        return put_be(o, 0xd2, (uint64_t)v, 4);
    return put_be(o, 0xd3, (uint64_t)v, 8);
}

static int
pack_obj(Out *o, PyObject *obj, int depth)
{
    if (depth > PACK_DEPTH)
        return pack_refuse();
    if (obj == Py_None)
        return put_byte(o, 0xc0);
    if (obj == Py_False || obj == Py_True)
        return put_byte(o, obj == Py_True ? 0xc3 : 0xc2);
    if (PyLong_CheckExact(obj))
        return pack_int(o, obj);
    if (PyFloat_CheckExact(obj)) {
        double d = PyFloat_AS_DOUBLE(obj);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_be(o, 0xcb, bits, 8);
    }
    if (PyUnicode_CheckExact(obj)) {
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(obj, &n);
        if (text == NULL) { /* a lone surrogate: the Packer's own error */
            PyErr_Clear();
            return pack_refuse();
        }
        return put_head(o, n, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0 ? -1 : put(o, text, n);
    }
    if (PyBytes_CheckExact(obj)) {
        Py_ssize_t n = PyBytes_GET_SIZE(obj);
        return put_head(o, n, 0, 0, 0xc4, 0xc5, 0xc6) < 0 ? -1 : put(o, PyBytes_AS_STRING(obj), n);
    }
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        PyObject **items = PySequence_Fast_ITEMS(obj);
        if (put_head(o, n, 0x90, 16, 0, 0xdc, 0xdd) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (pack_obj(o, items[i], depth + 1) < 0)
                return -1;
        return 0;
    }
    if (PyDict_CheckExact(obj)) {
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        if (put_head(o, PyDict_GET_SIZE(obj), 0x80, 16, 0, 0xde, 0xdf) < 0)
            return -1;
        while (PyDict_Next(obj, &pos, &k, &v))
            if (pack_obj(o, k, depth + 1) < 0 || pack_obj(o, v, depth + 1) < 0)
                return -1;
        return 0;
    }
    return pack_refuse();
}

static PyObject *
packed(PyObject *self, PyObject *obj)
{
    PyObject *out = NULL;
    (void)self;
    BUFFER.size = 0;
    if (pack_obj(&BUFFER, obj, 0) == 0)
        out = PyBytes_FromStringAndSize((const char *)BUFFER.data, BUFFER.size);
    if (BUFFER.cap > (1 << 20)) { /* kept for records of a few KB, not for an odd large one */
        PyMem_Free(BUFFER.data);
        BUFFER.data = NULL;
        BUFFER.cap = 0;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"clean_event", (PyCFunction)(void (*)(void))clean_event, METH_FASTCALL,
     "validate_event's answer for a plain event, else None."},
    {"murmur2", murmur2, METH_O, "output.murmur2, in C."},
    {"packed", packed, METH_O, "codec.packed, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "An event's check, a key's hash and msgpack, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    if ((K_USER = PyUnicode_InternFromString("user_id")) == NULL
        || (K_ITEM = PyUnicode_InternFromString("item_id")) == NULL
        || (K_CATS = PyUnicode_InternFromString("categories")) == NULL
        || (K_CAT = PyUnicode_InternFromString("category")) == NULL
        || (K_TYPE = PyUnicode_InternFromString("event_type")) == NULL
        || (K_TS = PyUnicode_InternFromString("ts")) == NULL
        || (K_WEIGHT = PyUnicode_InternFromString("weight")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
