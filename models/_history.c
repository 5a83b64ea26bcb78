/* models/history.py's push_event, most_moved, explained and read_columns, in C.
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
/* The positions of the top largest of the last window entries of moved (exact ints), largest
 * first, the earlier first among equals, into pos (room for min(top, window) of them):
 * how many, or -1 with TypeError for what the C code does not take. */
static Py_ssize_t
top_positions(PyObject *moved, Py_ssize_t window, Py_ssize_t top, Py_ssize_t *pos, long long *val)
{
    Py_ssize_t n = PyList_GET_SIZE(moved);
    Py_ssize_t lo = n - window > 0 ? n - window : 0;
    Py_ssize_t k = top < n - lo ? top : n - lo;
    Py_ssize_t held = 0;
    for (Py_ssize_t i = lo; i < n && k > 0; i++) {
        PyObject *item = PyList_GET_ITEM(moved, i);
        int overflow;
        long long v = PyLong_CheckExact(item) ? PyLong_AsLongLongAndOverflow(item, &overflow) : 0;
        if (!PyLong_CheckExact(item) || overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "most_moved: exact ints in range only");
            return -1;
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
    return held;
}

/* A window and a top from exact ints >= 0 (else TypeError). */
static int
window_top(PyObject *w, PyObject *t, Py_ssize_t *window, Py_ssize_t *top)
{
    if (!PyLong_CheckExact(w) || !PyLong_CheckExact(t)) {
        PyErr_SetString(PyExc_TypeError, "most_moved: window and top are exact ints");
        return -1;
    }
    *window = PyLong_AsSsize_t(w);
    *top = PyLong_AsSsize_t(t);
    if ((*window == -1 || *top == -1) && PyErr_Occurred())
        PyErr_Clear();
    if (*window < 0 || *top < 0) {
        PyErr_SetString(PyExc_TypeError, "most_moved: window and top >= 0");
        return -1;
    }
    return 0;
}

/* Buffers for top_positions: on the stack up to 64 entries. */
typedef struct {
    Py_ssize_t stack_pos[64], *pos;
    long long stack_val[64], *val;
} Positions;

static int
positions_init(Positions *p, Py_ssize_t top)
{
    p->pos = p->stack_pos;
    p->val = p->stack_val;
    if (top > 64) {
        p->pos = PyMem_Malloc(top * sizeof(Py_ssize_t));
        p->val = PyMem_Malloc(top * sizeof(long long));
        if (p->pos == NULL || p->val == NULL) {
            PyMem_Free(p->pos);
            PyMem_Free(p->val);
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void
positions_free(Positions *p)
{
    if (p->pos != p->stack_pos) {
        PyMem_Free(p->pos);
        PyMem_Free(p->val);
    }
}

static PyObject *
most_moved(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t window, top, held;
    Positions p;
    PyObject *out = NULL;
    (void)self;
    if (nargs != 3 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "most_moved: an exact list and two ints");
        return NULL;
    }
    if (window_top(args[1], args[2], &window, &top) < 0 || positions_init(&p, top) < 0)
        return NULL;
    held = top_positions(args[0], window, top, p.pos, p.val);
    if (held >= 0 && (out = PyList_New(held)) != NULL) {
        for (Py_ssize_t j = 0; j < held; j++) {
            PyObject *v = PyLong_FromSsize_t(p.pos[j]);
            if (v == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, j, v);
        }
    }
    positions_free(&p);
    return out;
}

/* ---- explain ------------------------------------------------------------------------- */

enum { E_ITEMS, E_TABLE, E_CATS, E_TYPES, E_TS, E_MOVED, E_COLUMNS };

static PyObject *K_item_id, *K_categories, *K_event_type, *K_ts, *K_moved, *EVENT_TYPES;

static int
explain_refuse(void)
{
    PyErr_SetString(PyExc_TypeError, "explained: exact lists of what push_event writes only");
    return -1;
}

/* table[c] for an exact int c in range (a new reference), else TypeError. */
static PyObject *
table_name(PyObject *table, PyObject *c)
{
    Py_ssize_t i = PyLong_CheckExact(c) ? PyLong_AsSsize_t(c) : -1;
    if (i == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (i < 0 || i >= PyList_GET_SIZE(table))
        return explain_refuse(), NULL;
    PyObject *name = PyList_GET_ITEM(table, i);
    Py_INCREF(name);
    return name;
}

/* history.explain_entry(columns, i). */
static PyObject *
entry_of(PyObject **col, Py_ssize_t i)
{
    PyObject *cat = PyList_GET_ITEM(col[E_CATS], i), *et = PyList_GET_ITEM(col[E_TYPES], i);
    PyObject *moved = PyList_GET_ITEM(col[E_MOVED], i), *names = NULL, *type_name, *value, *out;
    double m;
    if (!PyLong_CheckExact(moved) || ((m = PyLong_AsDouble(moved)) == -1.0 && PyErr_Occurred())) {
        PyErr_Clear();
        return explain_refuse(), NULL;
    }
    if (PyLong_CheckExact(cat)) {
        PyObject *name = table_name(col[E_TABLE], cat);
        if (name == NULL || (names = PyList_New(1)) == NULL) {
            Py_XDECREF(name);
            return NULL;
        }
        PyList_SET_ITEM(names, 0, name);
    }
    else if (PyList_CheckExact(cat)) {
        if ((names = PyList_New(PyList_GET_SIZE(cat))) == NULL)
            return NULL;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(cat); j++) {
            PyObject *name = table_name(col[E_TABLE], PyList_GET_ITEM(cat, j));
            if (name == NULL) {
                Py_DECREF(names);
                return NULL;
            }
            PyList_SET_ITEM(names, j, name);
        }
    }
    else {
        return explain_refuse(), NULL;
    }
    if (PyLong_CheckExact(et)) {
        Py_ssize_t t = PyLong_AsSsize_t(et);
        if (t == -1 && PyErr_Occurred())
            PyErr_Clear();
        if (t < 0 || t >= PyTuple_GET_SIZE(EVENT_TYPES)) {
            Py_DECREF(names);
            return explain_refuse(), NULL;
        }
        type_name = PyTuple_GET_ITEM(EVENT_TYPES, t);
    }
    else {
        type_name = et;
    }
    if ((out = PyDict_New()) == NULL || (value = PyFloat_FromDouble(m / 1e6)) == NULL) {
        Py_XDECREF(out);
        Py_DECREF(names);
        return NULL;
    }
    if (PyDict_SetItem(out, K_item_id, PyList_GET_ITEM(col[E_ITEMS], i)) < 0 ||
        PyDict_SetItem(out, K_categories, names) < 0 || PyDict_SetItem(out, K_event_type, type_name) < 0 ||
        PyDict_SetItem(out, K_ts, PyList_GET_ITEM(col[E_TS], i)) < 0 ||
        PyDict_SetItem(out, K_moved, value) < 0)
        Py_CLEAR(out);
    Py_DECREF(names);
    Py_DECREF(value);
    return out;
}

/* The entries of numbers (event numbers; the history's first is first): those the cache
 * names reused (its last one of a number, as dict(zip(...)) keeps), the others read. */
static PyObject *
read_entries(PyObject **col, PyObject *cached, const Py_ssize_t *numbers, Py_ssize_t held,
             Py_ssize_t first)
{
    PyObject *known = NULL, *old = NULL, *out = PyList_New(held);
    if (out == NULL)
        return NULL;
    if (cached != Py_None) {
        known = PyTuple_GET_ITEM(cached, 3);
        old = PyTuple_GET_ITEM(cached, 4);
    }
    for (Py_ssize_t j = 0; j < held; j++) {
        PyObject *entry = NULL;
        for (Py_ssize_t c = known != NULL ? PyList_GET_SIZE(known) - 1 : -1; c >= 0; c--) {
            Py_ssize_t was = PyLong_AsSsize_t(PyList_GET_ITEM(known, c));
            if (was == -1 && PyErr_Occurred())
                PyErr_Clear();
            else if (was == numbers[j]) {
                entry = PyList_GET_ITEM(old, c);
                break;
            }
        }
        if (entry != NULL && PyDict_GET_SIZE(entry) > 0) {
            Py_INCREF(entry); /* a non-empty dict: known.get(k) is true */
        }
        else if ((entry = entry_of(col, numbers[j] - first)) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, entry);
    }
    return out;
}

/* Whether the cache is (window, top, n, numbers, entries) with exact ints, exact dicts and
 * lists of one length (anything else: TypeError, and the Python definition answers). */
static int
cache_checked(PyObject *cached)
{
    if (cached == Py_None)
        return 0;
    if (!PyTuple_CheckExact(cached) || PyTuple_GET_SIZE(cached) != 5 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(cached, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(cached, 1)) ||
        !PyList_CheckExact(PyTuple_GET_ITEM(cached, 3)) ||
        !PyList_CheckExact(PyTuple_GET_ITEM(cached, 4)) ||
        PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 3)) != PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 4)))
        return explain_refuse();
    PyObject *known = PyTuple_GET_ITEM(cached, 3), *old = PyTuple_GET_ITEM(cached, 4);
    for (Py_ssize_t c = 0; c < PyList_GET_SIZE(known); c++)
        if (!PyLong_CheckExact(PyList_GET_ITEM(known, c)) || !PyDict_CheckExact(PyList_GET_ITEM(old, c)))
            return explain_refuse();
    return 0;
}

static PyObject *
explained(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *cached, *columns, *col[E_COLUMNS], *numbers = NULL, *entries = NULL;
    Py_ssize_t window, top, n, first, held, len;
    Positions p;
    int same;
    (void)self;
    if (nargs != 5 || !PyLong_CheckExact(args[3]) || !PyTuple_CheckExact(args[4]) ||
        PyTuple_GET_SIZE(args[4]) != E_COLUMNS)
        return explain_refuse(), NULL;
    cached = args[0];
    columns = args[4];
    if (window_top(args[1], args[2], &window, &top) < 0 || cache_checked(cached) < 0)
        return NULL;
    if ((n = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    for (int c = 0; c < E_COLUMNS; c++)
        if (!PyList_CheckExact(col[c] = PyTuple_GET_ITEM(columns, c)))
            return explain_refuse(), NULL;
    len = PyList_GET_SIZE(col[E_MOVED]);
    for (int c = 0; c < E_COLUMNS; c++)
        if (c != E_TABLE && PyList_GET_SIZE(col[c]) != len)
            return explain_refuse(), NULL;
    if (EVENT_TYPES == NULL) {
        PyObject *schema = PyImport_ImportModule("models.schema");
        if (schema == NULL)
            return NULL;
        EVENT_TYPES = PyObject_GetAttrString(schema, "EVENT_TYPES");
        Py_DECREF(schema);
        if (EVENT_TYPES == NULL)
            return NULL;
        if (!PyTuple_CheckExact(EVENT_TYPES)) {
            Py_CLEAR(EVENT_TYPES);
            return explain_refuse(), NULL;
        }
    }
    first = n - len;
    if (positions_init(&p, top) < 0)
        return NULL;
    if ((held = top_positions(col[E_MOVED], window, top, p.pos, p.val)) < 0)
        goto done;
    for (Py_ssize_t j = 0; j < held; j++)
        p.pos[j] += first; /* event numbers from here on */
    same = cached != Py_None && PyLong_AsSsize_t(PyTuple_GET_ITEM(cached, 0)) == window &&
           PyLong_AsSsize_t(PyTuple_GET_ITEM(cached, 1)) == top &&
           PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 3)) == held;
    PyErr_Clear(); /* an int past Py_ssize_t: not the same */
    for (Py_ssize_t j = 0; same && j < held; j++)
        same = PyLong_AsSsize_t(PyList_GET_ITEM(PyTuple_GET_ITEM(cached, 3), j)) == p.pos[j];
    PyErr_Clear();
    if (same) {
        entries = PyTuple_GET_ITEM(cached, 4);
        Py_INCREF(entries);
    }
    else if ((entries = read_entries(col, cached, p.pos, held, first)) == NULL) {
        goto done;
    }
    if ((numbers = PyList_New(held)) == NULL)
        goto done;
    for (Py_ssize_t j = 0; j < held; j++) {
        PyObject *v = PyLong_FromSsize_t(p.pos[j]);
        if (v == NULL)
            goto done;
        PyList_SET_ITEM(numbers, j, v);
    }
    positions_free(&p);
    return Py_BuildValue("(OOONN)", args[1], args[2], args[3], numbers, entries);
done:
    positions_free(&p);
    Py_XDECREF(numbers);
    Py_XDECREF(entries);
    return NULL;
}

/* history.read_columns(table, cats, times). Everything is checked before anything is made:
 * what the C does not take (a negative or out-of-range index, which Python reads from the end
 * or refuses; a name that is not an exact str; a time that is not an exact int, or one past
 * 2**53, whose float Python rounds from the whole integer) raises TypeError, and
 * history.py's definition answers. */
#define EXACT_TIME 9007199254740992LL /* 2**53: every integer up to it is an exact double */

static PyObject *
read_refuse(void)
{
    PyErr_SetString(PyExc_TypeError, "read_columns: exact lists of what push_event writes only");
    return NULL;
}

/* One more reference to the table entry c names (an exact int in range, else 0). */
static int
count_ref(PyObject *c, Py_ssize_t n, Py_ssize_t *counts)
{
    Py_ssize_t i;
    if (!table_index(c, n, &i))
        return 0;
    counts[i]++;
    return 1;
}

static int
exact_time(PyObject *v, long long *out)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return *out <= EXACT_TIME && *out >= -EXACT_TIME;
}

static PyObject *
read_columns(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_columns takes 3 arguments");
        return NULL;
    }
    PyObject *table = args[0], *cats = args[1], *times = args[2];
    if (!PyList_CheckExact(table) || !PyList_CheckExact(cats) || !PyList_CheckExact(times))
        return read_refuse();
    Py_ssize_t n = PyList_GET_SIZE(table), n_cats = PyList_GET_SIZE(cats);
    Py_ssize_t n_times = PyList_GET_SIZE(times);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(table, i)))
            return read_refuse();
    int ms = 0;
    double scale = 1.0;
    if (n_times) {
        PyObject *head = PyList_GET_ITEM(times, 0);
        if (!PyList_CheckExact(head) || PyList_GET_SIZE(head) < 1 || PyList_GET_SIZE(head) > 2)
            return read_refuse();
        ms = PyList_GET_SIZE(head) == 2;
        scale = ms ? 1000.0 : 1.0;
    }
    Py_ssize_t *counts = PyMem_Calloc(n ? n : 1, sizeof(Py_ssize_t));
    double *ts = PyMem_Malloc((n_times ? n_times : 1) * sizeof(double));
    PyObject *names = NULL, *index = NULL, *refs = NULL, *floats = NULL, *out = NULL;
    if (counts == NULL || ts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < n_cats; j++) {
        PyObject *c = PyList_GET_ITEM(cats, j);
        if (PyList_CheckExact(c)) {
            for (Py_ssize_t k = 0; k < PyList_GET_SIZE(c); k++)
                if (!count_ref(PyList_GET_ITEM(c, k), n, counts))
                    goto refused;
        }
        else if (!count_ref(c, n, counts)) {
            goto refused;
        }
    }
    long long t = 0, step;
    for (Py_ssize_t j = 0; j < n_times; j++) {
        PyObject *v = j ? PyList_GET_ITEM(times, j) : PyList_GET_ITEM(PyList_GET_ITEM(times, 0), 0);
        if (!exact_time(v, &step))
            goto refused;
        t = j ? t + step : step; /* both within 2**53: no overflow */
        if (t > EXACT_TIME || t < -EXACT_TIME)
            goto refused;
        ts[j] = (double)t / scale; /* as Python's int / int of numbers exact in a double */
    }
    Py_ssize_t stale = 0;
    if ((names = PyList_New(n)) == NULL || (index = PyDict_New()) == NULL ||
        (refs = PyList_New(n)) == NULL || (floats = PyList_New(n_times)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyList_GET_ITEM(table, i), *at, *count;
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        PyList_SET_ITEM(names, i, name);
        if ((at = PyLong_FromSsize_t(i)) == NULL)
            goto done;
        int failed = PyDict_SetItem(index, name, at) < 0;
        Py_DECREF(at);
        if (failed || (count = PyLong_FromSsize_t(counts[i])) == NULL)
            goto done;
        PyList_SET_ITEM(refs, i, count);
        stale += counts[i] == 0;
    }
    for (Py_ssize_t j = 0; j < n_times; j++) {
        PyObject *f = PyFloat_FromDouble(ts[j]);
        if (f == NULL)
            goto done;
        PyList_SET_ITEM(floats, j, f);
    }
    out = Py_BuildValue("(OOOnOO)", names, index, refs, stale, floats, ms ? Py_True : Py_False);
    goto done;
refused:
    read_refuse();
done:
    PyMem_Free(counts);
    PyMem_Free(ts);
    Py_XDECREF(names);
    Py_XDECREF(index);
    Py_XDECREF(refs);
    Py_XDECREF(floats);
    return out;
}

static PyMethodDef methods[] = {
    {"push_event", (PyCFunction)(void (*)(void))push_event, METH_FASTCALL,
     "history.push_event, in C."},
    {"most_moved", (PyCFunction)(void (*)(void))most_moved, METH_FASTCALL,
     "history.most_moved, in C."},
    {"explained", (PyCFunction)(void (*)(void))explained, METH_FASTCALL,
     "history.explained, in C."},
    {"read_columns", (PyCFunction)(void (*)(void))read_columns, METH_FASTCALL,
     "history.read_columns, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_history", "history.py's push_event, most_moved, explained and read_columns, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__history(void)
{
    if ((K_item_id = PyUnicode_InternFromString("item_id")) == NULL ||
        (K_categories = PyUnicode_InternFromString("categories")) == NULL ||
        (K_event_type = PyUnicode_InternFromString("event_type")) == NULL ||
        (K_ts = PyUnicode_InternFromString("ts")) == NULL ||
        (K_moved = PyUnicode_InternFromString("moved")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
