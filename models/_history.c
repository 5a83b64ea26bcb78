/* models/history.py's EventHistory and most_moved, in C.
 *
 * The Python definitions are the specification: the same columns, entries, counts and
 * answers after each call, bit for bit (tests/unit/test_history_c.py). Everything is checked
 * before anything changes: what the C does not take (a list subclass, a category that is not
 * an exact str, a non-finite time, an index out of range, a time whose float does not give
 * back its stored integer) raises TypeError with the history untouched, and history.py or
 * tracker.py then runs the Python definition, which answers as it always has.
 *
 * An EventHistory keeps its events in a ring of slots, one block of memory: item, categories
 * (a table index, or a list of them, as stored), type code, time as a double, moved in
 * millionths. The stored times column is derived from the doubles when asked for. Items must
 * be exact str, so the object holds no reference cycle and is not tracked by the collector.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* Integers from rounded doubles stay exact in int64 well past any time in milliseconds. */
#define SAFE_INTEGER 4.0e18
#define EXACT_INTEGER 9007199254740992LL /* 2**53: every integer up to it is an exact double */

static PyObject *K_item_id, *K_categories, *K_event_type, *K_ts, *K_moved;
static PyObject *EVENT_TYPES, *UNIT_MARK; /* models.schema.EVENT_TYPES, models.records.MS */
static Py_ssize_t STALE_CATEGORIES = -1;  /* models.history.STALE_CATEGORIES */

static int
refuse(const char *what)
{
    PyErr_SetString(PyExc_TypeError, what);
    return 0;
}

static int
load_constants(void)
{
    if (EVENT_TYPES != NULL)
        return 1;
    PyObject *schema = PyImport_ImportModule("models.schema");
    PyObject *records = schema == NULL ? NULL : PyImport_ImportModule("models.records");
    PyObject *history = records == NULL ? NULL : PyImport_ImportModule("models.history");
    PyObject *stale = NULL;
    if (history != NULL) {
        EVENT_TYPES = PyObject_GetAttrString(schema, "EVENT_TYPES");
        UNIT_MARK = EVENT_TYPES == NULL ? NULL : PyObject_GetAttrString(records, "MS");
        stale = UNIT_MARK == NULL ? NULL : PyObject_GetAttrString(history, "STALE_CATEGORIES");
    }
    Py_XDECREF(schema);
    Py_XDECREF(records);
    Py_XDECREF(history);
    if (stale == NULL || !PyTuple_CheckExact(EVENT_TYPES) || !PyLong_CheckExact(UNIT_MARK)
        || !PyLong_CheckExact(stale) || (STALE_CATEGORIES = PyLong_AsSsize_t(stale)) < 0) {
        Py_XDECREF(stale);
        Py_CLEAR(EVENT_TYPES);
        Py_CLEAR(UNIT_MARK);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "models.schema, .records or .history changed");
        return 0;
    }
    Py_DECREF(stale);
    return 1;
}

/* Python's round(x) (half to even) or int(x) (toward zero) of a finite double, in range. */
static int
whole(double x, int rounded, long long *out)
{
    double r = rounded ? nearbyint(x) : trunc(x);
    if (!isfinite(x) || fabs(r) > SAFE_INTEGER)
        return refuse("history: a time or move past what C rounds exactly");
    *out = (long long)r;
    return 1;
}

/* A time in its column's unit (records.time_tick). */
static int
tick(double ts, int ms, long long *out)
{
    return whole(ms ? ts * 1000 : ts, ms, out);
}

/* An exact int within +-2**53 (else 0, no exception set). */
static int
exact_int(PyObject *v, long long *out)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return *out <= EXACT_INTEGER && *out >= -EXACT_INTEGER;
}

/* ---- the top moves ------------------------------------------------------------------- */

/* The positions of the top largest of vals[0..n), largest first, the earlier first among
 * equals (sorted(..., reverse=True) is stable), into pos: how many. */
static Py_ssize_t
top_positions(const long long *vals, Py_ssize_t n, Py_ssize_t top, Py_ssize_t *pos,
              long long *held_vals)
{
    Py_ssize_t k = top < n ? top : n, held = 0;
    for (Py_ssize_t i = 0; i < n && k > 0; i++) {
        long long v = vals[i];
        Py_ssize_t at = held; /* after every held entry at least as large */
        while (at > 0 && held_vals[at - 1] < v)
            at--;
        if (at >= k)
            continue;
        Py_ssize_t last = held < k ? held : k - 1;
        for (Py_ssize_t j = last; j > at; j--) {
            pos[j] = pos[j - 1];
            held_vals[j] = held_vals[j - 1];
        }
        pos[at] = i;
        held_vals[at] = v;
        if (held < k)
            held++;
    }
    return held;
}

/* Buffers for a window's values and its top: on the stack up to 64 entries. */
typedef struct {
    Py_ssize_t stack_pos[64], *pos;
    long long stack_val[64], *val, stack_in[64], *in;
} Positions;

static void
positions_free(Positions *p)
{
    if (p->pos != p->stack_pos)
        PyMem_Free(p->pos);
    if (p->val != p->stack_val)
        PyMem_Free(p->val);
    if (p->in != p->stack_in)
        PyMem_Free(p->in);
}

static int
positions_init(Positions *p, Py_ssize_t top, Py_ssize_t window)
{
    p->pos = top > 64 ? PyMem_Malloc(top * sizeof(Py_ssize_t)) : p->stack_pos;
    p->val = top > 64 ? PyMem_Malloc(top * sizeof(long long)) : p->stack_val;
    p->in = window > 64 ? PyMem_Malloc(window * sizeof(long long)) : p->stack_in;
    if (p->pos == NULL || p->val == NULL || p->in == NULL) {
        positions_free(p); /* PyMem_Free(NULL) does nothing */
        PyErr_NoMemory();
        return 0;
    }
    return 1;
}

/* A window and a top from exact ints >= 0 (else TypeError). */
static int
window_top(PyObject *w, PyObject *t, Py_ssize_t *window, Py_ssize_t *top)
{
    if (!PyLong_CheckExact(w) || !PyLong_CheckExact(t))
        return refuse("most moved: window and top are exact ints");
    *window = PyLong_AsSsize_t(w);
    *top = PyLong_AsSsize_t(t);
    if ((*window == -1 || *top == -1) && PyErr_Occurred())
        PyErr_Clear();
    if (*window < 0 || *top < 0)
        return refuse("most moved: window and top >= 0");
    return 1;
}

/* list[i] = v (stolen) for a new v; on NULL (an exception set) the list is released: 0. */
static int
put(PyObject **list, Py_ssize_t i, PyObject *v)
{
    if (v == NULL) {
        Py_CLEAR(*list);
        return 0;
    }
    PyList_SET_ITEM(*list, i, v);
    return 1;
}

static PyObject *
positions_list(const Py_ssize_t *pos, Py_ssize_t held, Py_ssize_t offset)
{
    PyObject *out = PyList_New(held);
    for (Py_ssize_t j = 0; out != NULL && j < held; j++) {
        PyObject *v = PyLong_FromSsize_t(pos[j] + offset);
        put(&out, j, v);
    }
    return out;
}

/* most_moved(moved, window, top): an exact list of exact ints, window and top >= 0. */
static PyObject *
most_moved(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t window, top;
    Positions p;
    (void)self;
    if (nargs != 3 || !PyList_CheckExact(args[0]))
        return refuse("most_moved: an exact list and two ints"), NULL;
    if (!window_top(args[1], args[2], &window, &top))
        return NULL;
    PyObject *moved = args[0];
    Py_ssize_t n = PyList_GET_SIZE(moved), lo = n - window > 0 ? n - window : 0;
    if (!positions_init(&p, top, n - lo))
        return NULL;
    PyObject *out = NULL;
    for (Py_ssize_t i = lo; i < n; i++)
        if (!exact_int(PyList_GET_ITEM(moved, i), &p.in[i - lo])) {
            refuse("most_moved: exact ints in range only");
            goto done;
        }
    out = positions_list(p.pos, top_positions(p.in, n - lo, top, p.pos, p.val), lo);
done:
    positions_free(&p);
    return out;
}

/* ---- EventHistory -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, start, slots; /* events held, the oldest's slot, slots in the ring */
    PyObject **items, **cats, **types; /* one block: items, cats, types, ts, moved */
    double *ts;
    long long *moved;
    PyObject *table;  /* list of interned names */
    PyObject *index;  /* dict name -> table index */
    Py_ssize_t *refs; /* per table entry: how many events name it */
    Py_ssize_t refs_cap, stale;
    int ms;
} History;

static PyTypeObject HistoryType;

#define SLOT(h, i) (((h)->start + (i)) % (h)->slots)

static History *
history_new(PyTypeObject *type)
{
    History *h = (History *)type->tp_alloc(type, 0);
    if (h == NULL)
        return NULL;
    if ((h->table = PyList_New(0)) == NULL || (h->index = PyDict_New()) == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    return h;
}

static PyObject *
History_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "EventHistory() takes no arguments");
        return NULL;
    }
    return (PyObject *)history_new(type);
}

static void
History_dealloc(History *h)
{
    for (Py_ssize_t i = 0; i < h->n; i++) {
        Py_ssize_t s = SLOT(h, i);
        Py_DECREF(h->items[s]);
        Py_DECREF(h->cats[s]);
        Py_DECREF(h->types[s]);
    }
    PyMem_Free(h->items);
    PyMem_Free(h->refs);
    Py_XDECREF(h->table);
    Py_XDECREF(h->index);
    Py_TYPE(h)->tp_free((PyObject *)h);
}

/* The ring re-laid in order from slot 0 with room for slots events. */
static int
resize(History *h, Py_ssize_t slots)
{
    size_t each = 3 * sizeof(PyObject *) + sizeof(double) + sizeof(long long);
    PyObject **block = PyMem_Malloc(slots * each);
    if (block == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    PyObject **items = block, **cats = items + slots, **types = cats + slots;
    double *ts = (double *)(types + slots);
    long long *moved = (long long *)(ts + slots);
    for (Py_ssize_t i = 0; i < h->n; i++) {
        Py_ssize_t s = SLOT(h, i);
        items[i] = h->items[s];
        cats[i] = h->cats[s];
        types[i] = h->types[s];
        ts[i] = h->ts[s];
        moved[i] = h->moved[s];
    }
    PyMem_Free(h->items);
    h->items = items;
    h->cats = cats;
    h->types = types;
    h->ts = ts;
    h->moved = moved;
    h->slots = slots;
    h->start = 0;
    return 1;
}

static int
refs_room(History *h, Py_ssize_t need)
{
    if (need <= h->refs_cap)
        return 1;
    Py_ssize_t cap = h->refs_cap ? 2 * h->refs_cap : 8;
    if (cap < need)
        cap = need;
    Py_ssize_t *refs = PyMem_Realloc(h->refs, cap * sizeof(Py_ssize_t));
    if (refs == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    h->refs = refs;
    h->refs_cap = cap;
    return 1;
}

/* Whether a stored categories entry is an exact int, or an exact list of them, each a table
 * index in [0, n_table) (no exception set either way). */
static int
entry_checked(PyObject *entry, Py_ssize_t n_table)
{
    Py_ssize_t count = PyLong_CheckExact(entry) ? 1 : PyList_CheckExact(entry) ? PyList_GET_SIZE(entry) : -1;
    for (Py_ssize_t j = 0; j < count; j++) {
        PyObject *c = PyLong_CheckExact(entry) ? entry : PyList_GET_ITEM(entry, j);
        long long i;
        if (!exact_int(c, &i) || i < 0 || i >= n_table)
            return 0;
    }
    return count >= 0;
}

#define ENTRY_INDEX(entry, j) \
    PyLong_AsSsize_t(PyLong_CheckExact(entry) ? (entry) : PyList_GET_ITEM((entry), (j)))

/* refs of a stored categories entry's indexes (checked) += delta; zeros counted stale. */
static void
count_entry(History *h, PyObject *entry, int delta)
{
    Py_ssize_t n = PyLong_CheckExact(entry) ? 1 : PyList_GET_SIZE(entry);
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_ssize_t i = ENTRY_INDEX(entry, j);
        h->refs[i] += delta;
        if (delta < 0 && h->refs[i] == 0)
            h->stale++;
    }
}

/* An event's type code: an exact int naming an event type, or an exact str. */
static int
type_checked(PyObject *code)
{
    if (PyUnicode_CheckExact(code))
        return 1;
    Py_ssize_t t = PyLong_CheckExact(code) ? PyLong_AsSsize_t(code) : -1;
    if (t == -1 && PyErr_Occurred())
        PyErr_Clear();
    return t >= 0 && t < PyTuple_GET_SIZE(EVENT_TYPES);
}

/* The table index of a category, a new entry (interned) when the table lacks it; its
 * reference count raised. n_table: the table's length before the event (history.push_event). */
static PyObject *
ref(History *h, PyObject *category, Py_ssize_t n_table)
{
    PyObject *found = PyDict_GetItemWithError(h->index, category);
    Py_ssize_t i;
    if (found == NULL) {
        if (PyErr_Occurred())
            return NULL;
        i = PyList_GET_SIZE(h->table);
        if (!refs_room(h, i + 1) || (found = PyLong_FromSsize_t(i)) == NULL)
            return NULL;
        PyObject *name = Py_NewRef(category);
        PyUnicode_InternInPlace(&name);
        int failed = PyDict_SetItem(h->index, name, found) < 0 || PyList_Append(h->table, name) < 0;
        Py_DECREF(name);
        if (failed) {
            Py_DECREF(found);
            return NULL;
        }
        h->refs[i] = 0;
    }
    else {
        i = PyLong_AsSsize_t(found);
        Py_INCREF(found);
    }
    if (++h->refs[i] == 1 && i < n_table)
        h->stale--; /* an entry no event named any more, named again */
    return found;
}

/* history.compact_table: a new table of the entries the events name, in order of first use. */
static int
compact(History *h)
{
    Py_ssize_t n_old = PyList_GET_SIZE(h->table);
    Py_ssize_t *to = PyMem_Malloc((n_old ? n_old : 1) * sizeof(Py_ssize_t));
    PyObject *table = PyList_New(0), *index = PyDict_New(), **cats = NULL;
    Py_ssize_t *refs = PyMem_Calloc(n_old ? n_old : 1, sizeof(Py_ssize_t));
    if (h->n)
        cats = PyMem_Calloc(h->n, sizeof(PyObject *));
    int ok = 0;
    if (to == NULL || table == NULL || index == NULL || refs == NULL || (h->n && cats == NULL)) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_old; i++)
        to[i] = -1;
    for (Py_ssize_t e = 0; e < h->n; e++) {
        PyObject *entry = h->cats[SLOT(h, e)];
        int single = PyLong_CheckExact(entry);
        Py_ssize_t count = single ? 1 : PyList_GET_SIZE(entry);
        PyObject *out = single ? NULL : PyList_New(count);
        if (!single && out == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < count; j++) {
            Py_ssize_t old = ENTRY_INDEX(entry, j);
            if (to[old] < 0) {
                PyObject *name = PyList_GET_ITEM(h->table, old), *at;
                to[old] = PyList_GET_SIZE(table);
                if ((at = PyLong_FromSsize_t(to[old])) == NULL
                    || PyDict_SetItem(index, name, at) < 0 || PyList_Append(table, name) < 0) {
                    Py_XDECREF(at);
                    Py_XDECREF(out);
                    goto done;
                }
                Py_DECREF(at);
            }
            refs[to[old]]++;
            PyObject *v = PyLong_FromSsize_t(to[old]);
            if (v == NULL) {
                Py_XDECREF(out);
                goto done;
            }
            if (single)
                out = v;
            else
                PyList_SET_ITEM(out, j, v);
        }
        cats[e] = out;
    }
    for (Py_ssize_t e = 0; e < h->n; e++)
        Py_SETREF(h->cats[SLOT(h, e)], cats[e]);
    Py_SETREF(h->table, table);
    Py_SETREF(h->index, index);
    table = index = NULL;
    PyMem_Free(h->refs);
    h->refs = refs;
    h->refs_cap = n_old ? n_old : 1;
    refs = NULL;
    h->stale = 0;
    ok = 1;
done:
    if (!ok && cats != NULL)
        for (Py_ssize_t e = 0; e < h->n; e++)
            Py_XDECREF(cats[e]);
    PyMem_Free(cats);
    PyMem_Free(to);
    PyMem_Free(refs);
    Py_XDECREF(table);
    Py_XDECREF(index);
    return ok;
}

/* push(item, cats, type_code, ts, moved, cap): EventHistory.push. */
static PyObject *
History_push(History *h, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6)
        return refuse("push takes 6 arguments"), NULL;
    PyObject *item = args[0], *cats_in = args[1], *code = args[2];
    if (!load_constants())
        return NULL;
    if (!PyUnicode_CheckExact(item) || !(PyList_CheckExact(cats_in) || PyTuple_CheckExact(cats_in))
        || !type_checked(code) || !(PyFloat_CheckExact(args[3]) || PyLong_CheckExact(args[3]))
        || !PyFloat_CheckExact(args[4]) || !PyLong_CheckExact(args[5]))
        return refuse("push: an exact str item, str categories, float time and move, int cap"),
               NULL;
    Py_ssize_t n_cats = PySequence_Fast_GET_SIZE(cats_in);
    for (Py_ssize_t j = 0; j < n_cats; j++)
        if (!PyUnicode_CheckExact(PySequence_Fast_GET_ITEM(cats_in, j)))
            return refuse("push: categories must be exact str"), NULL;
    double ts = PyFloat_CheckExact(args[3]) ? PyFloat_AS_DOUBLE(args[3]) : PyLong_AsDouble(args[3]);
    Py_ssize_t cap = PyLong_AsSsize_t(args[5]);
    if ((ts == -1.0 || cap == -1) && PyErr_Occurred()) {
        PyErr_Clear();
        return refuse("push: a time or cap out of range"), NULL;
    }
    long long moved, t;
    int ms = h->ms || ts != trunc(ts);
    if (cap < 1 || !isfinite(ts) || !whole(PyFloat_AS_DOUBLE(args[4]) * 1e6, 1, &moved))
        return refuse("push: cap >= 1 and a finite time"), NULL;
    if (ms) {
        if (!whole(ts * 1000, 1, &t))
            return NULL;
        ts = (double)t / 1000; /* round(ts * 1000) / 1000 */
    }
    /* the times column must stay exact in its unit: every held time and this one */
    for (Py_ssize_t i = 0; ms && !h->ms && i < h->n; i++)
        if (!tick(h->ts[SLOT(h, i)], 1, &t))
            return NULL;
    if (!tick(ts, ms, &t))
        return NULL;
    /* From here on the history changes. */
    h->ms = ms;
    Py_ssize_t n_table = PyList_GET_SIZE(h->table), over = h->n + 1 - cap;
    int dropping = over > 0;
    for (; over > 0 && h->n > 0; over--) { /* the oldest leave first: the same counts */
        Py_ssize_t s = h->start;
        count_entry(h, h->cats[s], -1);
        Py_DECREF(h->items[s]);
        Py_DECREF(h->cats[s]);
        Py_DECREF(h->types[s]);
        h->start = (s + 1) % h->slots;
        h->n--;
    }
    if (h->n == h->slots) {
        Py_ssize_t grown = h->slots < 4 ? 4 : 2 * h->slots;
        if (!resize(h, grown < cap ? grown : cap > h->n ? cap : h->n + 1))
            return NULL;
    }
    PyObject *entry;
    if (n_cats == 1) {
        entry = ref(h, PySequence_Fast_GET_ITEM(cats_in, 0), n_table);
    }
    else {
        entry = PyList_New(n_cats);
        for (Py_ssize_t j = 0; entry != NULL && j < n_cats; j++) {
            put(&entry, j, ref(h, PySequence_Fast_GET_ITEM(cats_in, j), n_table));
        }
    }
    if (entry == NULL)
        return NULL;
    Py_ssize_t s = SLOT(h, h->n);
    h->items[s] = Py_NewRef(item);
    h->cats[s] = entry;
    h->types[s] = Py_NewRef(code);
    h->ts[s] = ts;
    h->moved[s] = moved;
    h->n++;
    if (dropping && h->stale > STALE_CATEGORIES && !compact(h))
        return NULL;
    Py_RETURN_NONE;
}

/* from_columns(items, table, cats, types, times, moved): EventHistory.from_columns. */
static PyObject *
History_from_columns(PyTypeObject *type, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6)
        return refuse("from_columns takes 6 columns"), NULL;
    for (int c = 0; c < 6; c++)
        if (!PyList_CheckExact(args[c]))
            return refuse("from_columns: exact lists only"), NULL;
    if (!load_constants())
        return NULL;
    PyObject *items = args[0], *table = args[1], *cats = args[2], *types = args[3];
    PyObject *times = args[4], *moved = args[5];
    Py_ssize_t n = PyList_GET_SIZE(items), n_table = PyList_GET_SIZE(table);
    if (PyList_GET_SIZE(cats) != n || PyList_GET_SIZE(types) != n || PyList_GET_SIZE(times) != n
        || PyList_GET_SIZE(moved) != n) {
        PyErr_SetString(PyExc_ValueError, "a user record's history columns differ in length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n_table; i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(table, i)))
            return refuse("from_columns: table names are exact str"), NULL;
    int ms = 0;
    if (n) {
        PyObject *head = PyList_GET_ITEM(times, 0);
        if (!PyList_CheckExact(head) || PyList_GET_SIZE(head) < 1 || PyList_GET_SIZE(head) > 2)
            return refuse("from_columns: a times column's head is [t] or [t, mark]"), NULL;
        ms = PyList_GET_SIZE(head) == 2;
        long long mark, unit;
        if (ms && (!exact_int(PyList_GET_ITEM(head, 1), &mark) || !exact_int(UNIT_MARK, &unit)
                   || mark != unit))
            return refuse("from_columns: a times column's mark is records.MS"), NULL;
    }
    History *h = history_new(type);
    if (h == NULL)
        return NULL;
    h->ms = ms;
    if (!refs_room(h, n_table ? n_table : 1) || (n && !resize(h, n)))
        goto fail;
    memset(h->refs, 0, h->refs_cap * sizeof(Py_ssize_t));
    long long cum = 0, step, m, back;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyList_GET_ITEM(cats, i), *code = PyList_GET_ITEM(types, i);
        PyObject *t = i ? PyList_GET_ITEM(times, i) : PyList_GET_ITEM(PyList_GET_ITEM(times, 0), 0);
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(items, i)) || !entry_checked(entry, n_table)
            || !type_checked(code) || !exact_int(t, &step) || !exact_int(PyList_GET_ITEM(moved, i), &m))
            goto refused;
        cum = i ? cum + step : step; /* both within 2**53: no overflow */
        double ts = ms ? (double)cum / 1000 : (double)cum; /* as Python's int / int */
        if (cum > EXACT_INTEGER || cum < -EXACT_INTEGER || !tick(ts, ms, &back) || back != cum)
            goto refused;
        h->items[i] = Py_NewRef(PyList_GET_ITEM(items, i));
        h->cats[i] = Py_NewRef(entry);
        h->types[i] = Py_NewRef(code);
        h->ts[i] = ts;
        h->moved[i] = m;
        h->n = i + 1;
        count_entry(h, entry, +1);
    }
    for (Py_ssize_t i = 0; i < n_table; i++) {
        PyObject *name = Py_NewRef(PyList_GET_ITEM(table, i)), *at;
        PyUnicode_InternInPlace(&name);
        int failed = PyList_Append(h->table, name) < 0 || (at = PyLong_FromSsize_t(i)) == NULL;
        if (!failed) {
            failed = PyDict_SetItem(h->index, name, at) < 0;
            Py_DECREF(at);
        }
        Py_DECREF(name);
        if (failed)
            goto fail;
        h->stale += h->refs[i] == 0;
    }
    return (PyObject *)h;
refused:
    PyErr_Clear();
    refuse("from_columns: columns of what push writes only");
fail:
    Py_DECREF(h);
    return NULL;
}

static Py_ssize_t
History_len(History *h)
{
    return h->n;
}

/* The stored times column, derived from the doubles (records.stored_times). */
static PyObject *
times_column(History *h)
{
    PyObject *out = PyList_New(h->n);
    long long prev = 0, t = 0;
    for (Py_ssize_t i = 0; out != NULL && i < h->n; i++) {
        PyObject *v;
        (void)tick(h->ts[SLOT(h, i)], h->ms, &t); /* checked when the time came in */
        if (i == 0)
            v = h->ms ? Py_BuildValue("[LO]", t, UNIT_MARK) : Py_BuildValue("[L]", t);
        else
            v = PyLong_FromLongLong(t - prev);
        prev = t;
        put(&out, i, v);
    }
    return out;
}

enum { C_ITEMS, C_CATS, C_TYPES, C_MOVED, C_TS };

static PyObject *
ring_column(History *h, int which)
{
    PyObject *out = PyList_New(h->n);
    for (Py_ssize_t i = 0; out != NULL && i < h->n; i++) {
        Py_ssize_t s = SLOT(h, i);
        PyObject *v;
        switch (which) {
        case C_ITEMS: v = Py_NewRef(h->items[s]); break;
        case C_CATS: v = Py_NewRef(h->cats[s]); break;
        case C_TYPES: v = Py_NewRef(h->types[s]); break;
        case C_MOVED: v = PyLong_FromLongLong(h->moved[s]); break;
        default: v = PyFloat_FromDouble(h->ts[s]); break;
        }
        put(&out, i, v);
    }
    return out;
}

/* columns(copy=True): [items, table, cats, types, times, moved], always new lists. */
static PyObject *
History_columns(History *h, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    if (nargs > 1)
        return refuse("columns takes at most one argument"), NULL;
    if (!load_constants())
        return NULL;
    return Py_BuildValue("[NNNNNN]", ring_column(h, C_ITEMS), PyList_GetSlice(h->table, 0, PY_SSIZE_T_MAX),
                         ring_column(h, C_CATS), ring_column(h, C_TYPES), times_column(h),
                         ring_column(h, C_MOVED));
}

/* The category names of the i-th event (history.category_names), as a new list. */
static PyObject *
names_of(History *h, Py_ssize_t i)
{
    PyObject *entry = h->cats[SLOT(h, i)];
    Py_ssize_t count = PyLong_CheckExact(entry) ? 1 : PyList_GET_SIZE(entry);
    PyObject *names = PyList_New(count);
    for (Py_ssize_t j = 0; names != NULL && j < count; j++)
        PyList_SET_ITEM(names, j, Py_NewRef(PyList_GET_ITEM(h->table, ENTRY_INDEX(entry, j))));
    return names;
}

static PyObject *
type_name(PyObject *code)
{
    return PyLong_CheckExact(code) ? PyTuple_GET_ITEM(EVENT_TYPES, PyLong_AsSsize_t(code)) : code;
}

static int
index_checked(History *h, PyObject *arg, Py_ssize_t *i)
{
    *i = PyLong_CheckExact(arg) ? PyLong_AsSsize_t(arg) : -1;
    if (*i == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (*i < 0)
        *i += h->n;
    if (*i < 0 || *i >= h->n) {
        PyErr_SetString(PyExc_IndexError, "history index out of range");
        return 0;
    }
    return 1;
}

/* entry(i): history.history_entry of the i-th event. */
static PyObject *
History_entry(History *h, PyObject *arg)
{
    Py_ssize_t i;
    if (!load_constants() || !index_checked(h, arg, &i))
        return NULL;
    PyObject *names = names_of(h, i), *cats = names == NULL ? NULL : PyList_AsTuple(names);
    Py_XDECREF(names);
    if (cats == NULL)
        return NULL;
    Py_ssize_t s = SLOT(h, i);
    return Py_BuildValue("(ONOdd)", h->items[s], cats, type_name(h->types[s]), h->ts[s],
                         (double)h->moved[s] / 1e6);
}

/* history.explain_entry of the i-th event. */
static PyObject *
explain_entry(History *h, Py_ssize_t i)
{
    Py_ssize_t s = SLOT(h, i);
    PyObject *names = names_of(h, i), *ts = NULL, *moved = NULL, *out = NULL;
    if (names == NULL || (ts = PyFloat_FromDouble(h->ts[s])) == NULL
        || (moved = PyFloat_FromDouble((double)h->moved[s] / 1e6)) == NULL
        || (out = PyDict_New()) == NULL)
        goto done;
    if (PyDict_SetItem(out, K_item_id, h->items[s]) < 0 || PyDict_SetItem(out, K_categories, names) < 0
        || PyDict_SetItem(out, K_event_type, type_name(h->types[s])) < 0
        || PyDict_SetItem(out, K_ts, ts) < 0 || PyDict_SetItem(out, K_moved, moved) < 0)
        Py_CLEAR(out);
done:
    Py_XDECREF(names);
    Py_XDECREF(ts);
    Py_XDECREF(moved);
    return out;
}

/* Whether the cache is (window, top, n, numbers, entries) with exact ints, exact dicts and
 * lists of one length (else TypeError). */
static int
cache_checked(PyObject *cached)
{
    if (cached == Py_None)
        return 1;
    if (!PyTuple_CheckExact(cached) || PyTuple_GET_SIZE(cached) != 5
        || !PyLong_CheckExact(PyTuple_GET_ITEM(cached, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(cached, 1))
        || !PyList_CheckExact(PyTuple_GET_ITEM(cached, 3)) || !PyList_CheckExact(PyTuple_GET_ITEM(cached, 4))
        || PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 3)) != PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 4)))
        return refuse("explained: a cache of what explained answers only");
    PyObject *known = PyTuple_GET_ITEM(cached, 3), *old = PyTuple_GET_ITEM(cached, 4);
    for (Py_ssize_t c = 0; c < PyList_GET_SIZE(known); c++)
        if (!PyLong_CheckExact(PyList_GET_ITEM(known, c)) || !PyDict_CheckExact(PyList_GET_ITEM(old, c)))
            return refuse("explained: a cache of what explained answers only");
    return 1;
}

/* The entries of numbers (event numbers; the history's first is first): those the cache
 * names reused (its last one of a number, as dict(zip(...)) keeps), the others read. */
static PyObject *
read_entries(History *h, PyObject *cached, const Py_ssize_t *numbers, Py_ssize_t held,
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
        else if ((entry = explain_entry(h, numbers[j] - first)) == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, entry);
    }
    return out;
}

/* explained(cached, window, top, n): EventHistory.explained. */
static PyObject *
History_explained(History *h, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t window, top, n, held;
    Positions p;
    if (nargs != 4 || !PyLong_CheckExact(args[3]))
        return refuse("explained(cached, window, top, n)"), NULL;
    PyObject *cached = args[0], *numbers = NULL, *entries = NULL;
    if (!load_constants() || !window_top(args[1], args[2], &window, &top) || !cache_checked(cached))
        return NULL;
    if ((n = PyLong_AsSsize_t(args[3])) == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t lo = h->n - window > 0 ? h->n - window : 0, first = n - h->n;
    if (!positions_init(&p, top, h->n - lo))
        return NULL;
    for (Py_ssize_t i = lo; i < h->n; i++)
        p.in[i - lo] = h->moved[SLOT(h, i)];
    held = top_positions(p.in, h->n - lo, top, p.pos, p.val);
    for (Py_ssize_t j = 0; j < held; j++)
        p.pos[j] += lo + first; /* event numbers from here on */
    int same = cached != Py_None && PyLong_AsSsize_t(PyTuple_GET_ITEM(cached, 0)) == window
               && PyLong_AsSsize_t(PyTuple_GET_ITEM(cached, 1)) == top
               && PyList_GET_SIZE(PyTuple_GET_ITEM(cached, 3)) == held;
    PyErr_Clear(); /* an int past Py_ssize_t: not the same */
    for (Py_ssize_t j = 0; same && j < held; j++)
        same = PyLong_AsSsize_t(PyList_GET_ITEM(PyTuple_GET_ITEM(cached, 3), j)) == p.pos[j];
    PyErr_Clear();
    if (same)
        entries = Py_NewRef(PyTuple_GET_ITEM(cached, 4));
    else
        entries = read_entries(h, cached, p.pos, held, first);
    if (entries != NULL)
        numbers = positions_list(p.pos, held, 0);
    positions_free(&p);
    if (numbers == NULL) {
        Py_XDECREF(entries);
        return NULL;
    }
    return Py_BuildValue("(OOONN)", args[1], args[2], args[3], numbers, entries);
}

/* state(): EventHistory.state, new objects. */
static PyObject *
History_state(History *h, PyObject *unused)
{
    (void)unused;
    if (!load_constants())
        return NULL;
    Py_ssize_t n_table = PyList_GET_SIZE(h->table);
    PyObject *refs = PyList_New(n_table);
    for (Py_ssize_t i = 0; refs != NULL && i < n_table; i++) {
        PyObject *v = PyLong_FromSsize_t(h->refs[i]);
        put(&refs, i, v);
    }
    return Py_BuildValue("(NNNNNNNNNnO)", ring_column(h, C_ITEMS),
                         PyList_GetSlice(h->table, 0, PY_SSIZE_T_MAX), PyDict_Copy(h->index), refs,
                         ring_column(h, C_CATS), ring_column(h, C_TYPES), ring_column(h, C_TS),
                         times_column(h), ring_column(h, C_MOVED), h->stale, h->ms ? Py_True : Py_False);
}

static PyObject *
History_reduce(History *h, PyObject *unused)
{
    PyObject *columns = History_columns(h, NULL, 0), *make;
    if (columns == NULL)
        return NULL;
    PyObject *args = PyList_AsTuple(columns);
    Py_DECREF(columns);
    if (args == NULL || (make = PyObject_GetAttrString((PyObject *)Py_TYPE(h), "from_columns")) == NULL) {
        Py_XDECREF(args);
        return NULL;
    }
    (void)unused;
    return Py_BuildValue("(NN)", make, args);
}

static PyObject *
History_sizeof(History *h, PyObject *unused)
{
    (void)unused;
    size_t each = 3 * sizeof(PyObject *) + sizeof(double) + sizeof(long long);
    return PyLong_FromSize_t(Py_TYPE(h)->tp_basicsize + h->slots * each + h->refs_cap * sizeof(Py_ssize_t));
}

static PyMethodDef History_methods[] = {
    {"from_columns", (PyCFunction)(void (*)(void))History_from_columns, METH_FASTCALL | METH_CLASS,
     "EventHistory.from_columns, in C."},
    {"push", (PyCFunction)(void (*)(void))History_push, METH_FASTCALL, "EventHistory.push, in C."},
    {"columns", (PyCFunction)(void (*)(void))History_columns, METH_FASTCALL,
     "EventHistory.columns, in C (always new lists)."},
    {"entry", (PyCFunction)History_entry, METH_O, "EventHistory.entry, in C."},
    {"explained", (PyCFunction)(void (*)(void))History_explained, METH_FASTCALL,
     "EventHistory.explained, in C."},
    {"state", (PyCFunction)History_state, METH_NOARGS, "EventHistory.state, in C."},
    {"__reduce__", (PyCFunction)History_reduce, METH_NOARGS, NULL},
    {"__sizeof__", (PyCFunction)History_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods History_as_sequence = {
    .sq_length = (lenfunc)History_len,
};

static PyTypeObject HistoryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "models._history.EventHistory",
    .tp_doc = "history.EventHistory, in C: a user's last events in a ring of slots.",
    .tp_basicsize = sizeof(History),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = History_new,
    .tp_dealloc = (destructor)History_dealloc,
    .tp_methods = History_methods,
    .tp_as_sequence = &History_as_sequence,
};

static PyMethodDef methods[] = {
    {"most_moved", (PyCFunction)(void (*)(void))most_moved, METH_FASTCALL,
     "history.most_moved, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_history", "history.py's EventHistory and most_moved, in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__history(void)
{
    if ((K_item_id = PyUnicode_InternFromString("item_id")) == NULL
        || (K_categories = PyUnicode_InternFromString("categories")) == NULL
        || (K_event_type = PyUnicode_InternFromString("event_type")) == NULL
        || (K_ts = PyUnicode_InternFromString("ts")) == NULL
        || (K_moved = PyUnicode_InternFromString("moved")) == NULL || PyType_Ready(&HistoryType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "EventHistory", (PyObject *)&HistoryType) < 0)
        Py_CLEAR(m);
    return m;
}
