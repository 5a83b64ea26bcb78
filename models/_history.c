/* models/history.py's push_event and most_moved, in C.
 *
 * The Python definition is the specification: the same columns, entries and counts after
 * each call, bit for bit (tests/unit/test_history_c.py). Everything is checked before the
 * first column changes: anything the C does not take (a list subclass, an int time, a
 * non-finite one, an index out of range) raises TypeError with the columns untouched, and
 * history.py then runs the Python definition, which answers as it always has.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define N_COLUMNS 9
enum { ITEMS, TABLE, INDEX, REFS, CATS, TYPES, TS, TIMES, MOVED };

/* Integers from rounded doubles stay exact in int64 well past any time in milliseconds. */
#define SAFE_INTEGER 4.0e18

static int
refuse(void)
{
    PyErr_SetString(PyExc_TypeError, "push_event: exact lists, dict, str and float only");
    return 0;
}

/* Python's round(x) (half to even) or int(x) (toward zero) of a finite double, in range. */
static int
whole(double x, int rounded, long long *out)
{
    double r = rounded ? nearbyint(x) : trunc(x);
    if (!isfinite(x) || fabs(r) > SAFE_INTEGER)
        return refuse();
    *out = (long long)r;
    return 1;
}

/* A table index held in the index dict or the categories column, checked against refs. */
static int
table_index(PyObject *obj, Py_ssize_t n_refs, Py_ssize_t *out)
{
    if (!PyLong_CheckExact(obj))
        return refuse();
    Py_ssize_t i = PyLong_AsSsize_t(obj);
    if (i == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return refuse();
    }
    if (i < 0 || i >= n_refs)
        return refuse();
    *out = i;
    return 1;
}

static int
ref_count(PyObject *refs, Py_ssize_t i, long long *out)
{
    PyObject *v = PyList_GET_ITEM(refs, i);
    if (!PyLong_CheckExact(v))
        return refuse();
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return refuse();
    }
    return 1;
}

static int
set_ref(PyObject *refs, Py_ssize_t i, long long value)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return 0;
    return PyList_SetItem(refs, i, v) == 0; /* steals v */
}

/* The first entry of a times column: [t] in seconds, [t ms, unit mark] in milliseconds. */
static PyObject *
time_head(double ts, PyObject *unit_mark)
{
    long long t;
    if (!whole(unit_mark == Py_None ? ts : ts * 1000, unit_mark != Py_None, &t))
        return NULL;
    if (unit_mark == Py_None)
        return Py_BuildValue("[L]", t);
    return Py_BuildValue("[LO]", t, unit_mark);
}

/* Checks a categories column entry (an index or a list of them) against refs. */
static int
check_entry(PyObject *entry, Py_ssize_t n_refs)
{
    Py_ssize_t i;
    if (PyLong_CheckExact(entry))
        return table_index(entry, n_refs, &i);
    if (!PyList_CheckExact(entry))
        return refuse();
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(entry); j++)
        if (!table_index(PyList_GET_ITEM(entry, j), n_refs, &i))
            return 0;
    return 1;
}

/* refs[i] += delta for one column entry; counts entries that reach zero into *stale. */
static int
count_entry(PyObject *refs, PyObject *entry, int delta, long long *stale)
{
    Py_ssize_t n = PyLong_CheckExact(entry) ? 1 : PyList_GET_SIZE(entry);
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *obj = PyLong_CheckExact(entry) ? entry : PyList_GET_ITEM(entry, j);
        Py_ssize_t i = PyLong_AsSsize_t(obj);
        long long count;
        if (!ref_count(refs, i, &count) || !set_ref(refs, i, count + delta))
            return 0;
        if (delta < 0 && count + delta == 0)
            (*stale)++;
    }
    return 1;
}

/* The table index of one of the event's categories (a new entry if the table lacks it). */
static PyObject *
ref(PyObject **col, PyObject *category, long long *stale)
{
    PyObject *found = PyDict_GetItemWithError(col[INDEX], category);
    Py_ssize_t i;
    long long count = 0;
    if (found == NULL) {
        if (PyErr_Occurred())
            return NULL;
        i = PyList_GET_SIZE(col[TABLE]);
        PyObject *key = PyLong_FromSsize_t(i);
        if (key == NULL)
            return NULL;
        PyObject *name = Py_NewRef(category);
        PyUnicode_InternInPlace(&name);
        int failed = PyDict_SetItem(col[INDEX], category, key) < 0
                     || PyList_Append(col[TABLE], name) < 0;
        Py_DECREF(name);
        PyObject *zero = failed ? NULL : PyLong_FromLong(0);
        if (zero == NULL || PyList_Append(col[REFS], zero) < 0) {
            Py_XDECREF(zero);
            Py_DECREF(key);
            return NULL;
        }
        Py_DECREF(zero);
        found = key;
    }
    else {
        i = PyLong_AsSsize_t(found); /* checked before anything changed */
        if (!ref_count(col[REFS], i, &count))
            return NULL;
        if (count == 0)
            (*stale)--;
        Py_INCREF(found);
    }
    if (!set_ref(col[REFS], i, count + 1)) {
        Py_DECREF(found);
        return NULL;
    }
    return found;
}

/* Everything the call reads, checked before it writes anything: the event's own fields,
 * the event columns of one length, every reference count an exact int, every table index
 * the call follows in range. */
static int
check_call(PyObject **col, PyObject *cats, PyObject *ts_obj, PyObject *unit_mark,
           PyObject *moved_obj, Py_ssize_t cap)
{
    static const int rows[] = {CATS, TYPES, TS, TIMES, MOVED};
    Py_ssize_t len = PyList_GET_SIZE(col[ITEMS]);
    Py_ssize_t n_refs = PyList_GET_SIZE(col[REFS]);
    Py_ssize_t i;
    long long count;
    if (!PyFloat_CheckExact(ts_obj) || !PyFloat_CheckExact(moved_obj)
        || (unit_mark != Py_None && !PyLong_CheckExact(unit_mark)) || cap < 1
        || n_refs != PyList_GET_SIZE(col[TABLE]))
        return refuse();
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
        if (PyList_GET_SIZE(col[rows[k]]) != len)
            return refuse();
    for (i = 0; i < n_refs; i++)
        if (!ref_count(col[REFS], i, &count))
            return 0;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(cats); j++) {
        PyObject *c = PySequence_Fast_GET_ITEM(cats, j);
        if (!PyUnicode_CheckExact(c))
            return refuse();
        PyObject *found = PyDict_GetItemWithError(col[INDEX], c);
        if (found == NULL && PyErr_Occurred())
            return 0;
        if (found != NULL && !table_index(found, n_refs, &i))
            return 0;
    }
    /* The events that will leave (cap >= 1: old ones only) index the old table. */
    for (Py_ssize_t j = 0; j < len + 1 - cap; j++)
        if (!check_entry(PyList_GET_ITEM(col[CATS], j), n_refs))
            return 0;
    Py_ssize_t first = len + 1 - cap; /* the first event kept, if it is an old one */
    if ((len > 0 && !PyFloat_CheckExact(PyList_GET_ITEM(col[TS], len - 1)))
        || (first > 0 && first < len && !PyFloat_CheckExact(PyList_GET_ITEM(col[TS], first))))
        return refuse();
    return 1;
}

static PyObject *
time_entry(PyObject **col, double ts, PyObject *unit_mark)
{
    Py_ssize_t n = PyList_GET_SIZE(col[TS]);
    if (n == 0)
        return time_head(ts, unit_mark);
    double prev = PyFloat_AS_DOUBLE(PyList_GET_ITEM(col[TS], n - 1));
    int ms = unit_mark != Py_None;
    long long a, b;
    if (!whole(ms ? ts * 1000 : ts, ms, &a) || !whole(ms ? prev * 1000 : prev, ms, &b))
        return NULL;
    return PyLong_FromLongLong(a - b);
}

static int
drop_oldest(PyObject **col, Py_ssize_t over, PyObject *unit_mark, long long *stale)
{
    for (Py_ssize_t j = 0; j < over; j++)
        if (!count_entry(col[REFS], PyList_GET_ITEM(col[CATS], j), -1, stale))
            return 0;
    static const int dropped[] = {ITEMS, CATS, TYPES, TS, TIMES, MOVED};
    for (size_t k = 0; k < sizeof dropped / sizeof dropped[0]; k++) {
        if (PyList_SetSlice(col[dropped[k]], 0, over, NULL) < 0)
            return 0;
    }
    if (PyList_GET_SIZE(col[TIMES]) > 0) {
        PyObject *head = time_head(PyFloat_AS_DOUBLE(PyList_GET_ITEM(col[TS], 0)), unit_mark);
        if (head == NULL || PyList_SetItem(col[TIMES], 0, head) < 0)
            return 0;
    }
    return 1;
}

static PyObject *
push_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "push_event takes 9 arguments");
        return NULL;
    }
    PyObject *history = args[0], *item = args[1], *cats_in = args[2], *type_code = args[3];
    PyObject *ts_obj = args[4], *unit_mark = args[5], *moved_obj = args[6];
    if (!(PyList_CheckExact(history) || PyTuple_CheckExact(history))
        || PySequence_Fast_GET_SIZE(history) != N_COLUMNS
        || !(PyList_CheckExact(cats_in) || PyTuple_CheckExact(cats_in))
        || !PyLong_CheckExact(args[7]) || !PyLong_CheckExact(args[8])) {
        refuse();
        return NULL;
    }
    PyObject *col[N_COLUMNS];
    for (int k = 0; k < N_COLUMNS; k++) {
        col[k] = PySequence_Fast_GET_ITEM(history, k);
        if (k == INDEX ? !PyDict_CheckExact(col[k]) : !PyList_CheckExact(col[k])) {
            refuse();
            return NULL;
        }
    }
    Py_ssize_t cap = PyLong_AsSsize_t(args[7]);
    int overflow;
    long long stale = PyLong_AsLongLongAndOverflow(args[8], &overflow);
    if ((cap == -1 || stale == -1) && PyErr_Occurred()) {
        PyErr_Clear();
        refuse();
        return NULL;
    }
    if (overflow || !check_call(col, cats_in, ts_obj, unit_mark, moved_obj, cap))
        return NULL;
    double ts = PyFloat_AS_DOUBLE(ts_obj);
    long long moved;
    PyObject *step = time_entry(col, ts, unit_mark);
    if (step == NULL || !whole(PyFloat_AS_DOUBLE(moved_obj) * 1e6, 1, &moved)) {
        Py_XDECREF(step);
        return NULL;
    }
    /* From here on the columns change. */
    PyObject *entry;
    Py_ssize_t n_cats = PySequence_Fast_GET_SIZE(cats_in);
    if (n_cats == 1) {
        entry = ref(col, PySequence_Fast_GET_ITEM(cats_in, 0), &stale);
    }
    else {
        entry = PyList_New(n_cats);
        for (Py_ssize_t j = 0; entry != NULL && j < n_cats; j++) {
            PyObject *i = ref(col, PySequence_Fast_GET_ITEM(cats_in, j), &stale);
            if (i == NULL)
                Py_CLEAR(entry);
            else
                PyList_SET_ITEM(entry, j, i);
        }
    }
    PyObject *moved_int = entry == NULL ? NULL : PyLong_FromLongLong(moved);
    int failed = moved_int == NULL || PyList_Append(col[ITEMS], item) < 0
                 || PyList_Append(col[CATS], entry) < 0
                 || PyList_Append(col[TYPES], type_code) < 0
                 || PyList_Append(col[TIMES], step) < 0 || PyList_Append(col[TS], ts_obj) < 0
                 || PyList_Append(col[MOVED], moved_int) < 0;
    Py_XDECREF(entry);
    Py_XDECREF(moved_int);
    Py_DECREF(step);
    if (failed)
        return NULL;
    Py_ssize_t over = PyList_GET_SIZE(col[ITEMS]) - cap;
    if (over > 0 && !drop_oldest(col, over, unit_mark, &stale))
        return NULL;
    return PyLong_FromLongLong(stale);
}

/* most_moved(moved, window, top): the positions of the top largest of the last window
 * entries, largest first, the earlier first among equals (sorted(..., reverse=True) is
 * stable). Exact list of exact ints in range, window and top >= 0; else TypeError. */
static PyObject *
most_moved(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyLong_CheckExact(args[1])
        || !PyLong_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "most_moved: an exact list and two ints");
        return NULL;
    }
    PyObject *moved = args[0];
    Py_ssize_t window = PyLong_AsSsize_t(args[1]);
    Py_ssize_t top = PyLong_AsSsize_t(args[2]);
    if ((window == -1 || top == -1) && PyErr_Occurred())
        PyErr_Clear();
    if (window < 0 || top < 0) {
        PyErr_SetString(PyExc_TypeError, "most_moved: window and top >= 0");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(moved);
    Py_ssize_t lo = n - window > 0 ? n - window : 0;
    Py_ssize_t k = top < n - lo ? top : n - lo;
    Py_ssize_t stack_pos[64];
    long long stack_val[64];
    Py_ssize_t *pos = stack_pos;
    long long *val = stack_val;
    if (k > 64) {
        pos = PyMem_Malloc(k * sizeof(Py_ssize_t));
        val = PyMem_Malloc(k * sizeof(long long));
        if (pos == NULL || val == NULL) {
            PyMem_Free(pos);
            PyMem_Free(val);
            return PyErr_NoMemory();
        }
    }
    Py_ssize_t held = 0;
    int refused = 0;
    for (Py_ssize_t i = lo; i < n && k > 0; i++) {
        PyObject *item = PyList_GET_ITEM(moved, i);
        int overflow;
        long long v = PyLong_CheckExact(item) ? PyLong_AsLongLongAndOverflow(item, &overflow) : 0;
        if (!PyLong_CheckExact(item) || overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            refused = 1;
            break;
        }
        /* after every held entry at least as large: this one is the latest */
        Py_ssize_t at = held;
        while (at > 0 && val[at - 1] < v)
            at--;
        if (at >= k)
            continue;
        Py_ssize_t last = held < k ? held : k - 1;
        for (Py_ssize_t j = last; j > at; j--) {
            pos[j] = pos[j - 1];
            val[j] = val[j - 1];
        }
        pos[at] = i;
        val[at] = v;
        if (held < k)
            held++;
    }
    PyObject *out = NULL;
    if (refused)
        PyErr_SetString(PyExc_TypeError, "most_moved: exact ints in range only");
    else if ((out = PyList_New(held)) != NULL) {
        for (Py_ssize_t j = 0; j < held; j++) {
            PyObject *p = PyLong_FromSsize_t(pos[j]);
            if (p == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, j, p);
        }
    }
    if (pos != stack_pos) {
        PyMem_Free(pos);
        PyMem_Free(val);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"push_event", (PyCFunction)(void (*)(void))push_event, METH_FASTCALL,
     "history.push_event, in C."},
    {"most_moved", (PyCFunction)(void (*)(void))most_moved, METH_FASTCALL,
     "history.most_moved, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_history", "history.py's push_event and most_moved, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__history(void)
{
    return PyModule_Create(&module);
}
