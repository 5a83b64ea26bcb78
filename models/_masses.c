/* The per-event and per-snapshot arithmetic of models/online/masses.py, in C.
 *
 * Every function here has a Python definition of the same name and arguments in masses.py,
 * which stays the specification: the same divisions and products, sums in the same order
 * (as the running interpreter's sum() does: see PySum), ties broken by name as Python's sort of
 * (-p, name) pairs does, so the results are equal bit for bit (tests/unit/test_masses_c.py).
 * A user's distributions hold a handful of categories; in Python each step is a list of
 * tuples or a dict comprehension, a few microseconds, and a snapshot takes a dozen of them.
 *
 * Only exact str categories, exact float masses and k >= 0 are taken: anything else raises
 * TypeError, and masses.py then runs the Python definition (which keeps, say, int values).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static PyObject *OTHER; /* "_other": never ranked; holds the rest of the mass */

/* ---- Python's sum() ------------------------------------------------------------------ */

/* A float sum as the running interpreter's sum() computes it: left to right before 3.12,
 * from 3.12 with Neumaier's compensation (Python/bltinmodule.c), so that C and Python agree
 * bit for bit on either. Starting from 0.0 matches sum()'s int start: 0 + x is x. */
typedef struct {
    double f, c;
} PySum;

static inline void
pysum_add(PySum *s, double x)
{
#if PY_VERSION_HEX >= 0x030C0000
    double t = s->f + x;
    if (fabs(s->f) >= fabs(x))
        s->c += (s->f - t) + x;
    else
        s->c += (x - t) + s->f;
    s->f = t;
#else
    s->f += x;
#endif
}

static inline double
pysum_result(const PySum *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (s->c != 0.0 && isfinite(s->c))
        return s->f + s->c;
#endif
    return s->f;
}

/* ---- checks -------------------------------------------------------------------------- */

static int type_error(void);

/* "O&" converter: an exact dict (a subclass, say an OrderedDict, may iterate in another
 * order than its underlying dict: TypeError, and the Python definition answers). */
static int
exact_dict(PyObject *obj, void *out)
{
    if (!PyDict_CheckExact(obj))
        return type_error();
    *(PyObject **)out = obj;
    return 1;
}

static int
type_error(void)
{
    PyErr_SetString(PyExc_TypeError, "str categories and float masses only");
    return 0;
}

static int
checked(PyObject *name, PyObject *value)
{
    if (!PyUnicode_CheckExact(name) || !PyFloat_CheckExact(value))
        return type_error();
    return 1;
}

static int
is_other(PyObject *name)
{
    return name == OTHER || PyUnicode_Compare(name, OTHER) == 0;
}

/* The float at name in d, 0.0 when absent; -1 on error (TypeError for a non-float). */
static int
get_or_zero(PyObject *d, PyObject *name, double *out)
{
    PyObject *v = PyDict_GetItemWithError(d, name);
    if (v == NULL) {
        if (PyErr_Occurred())
            return -1;
        *out = 0.0;
        return 0;
    }
    if (!PyFloat_CheckExact(v)) {
        type_error();
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(v);
    return 0;
}

/* Sum of a dict's float values, left to right; -1 on error. */
static int
sum_values(PyObject *d, double *out)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    PySum total = {0.0, 0.0};
    while (PyDict_Next(d, &pos, &name, &value)) {
        if (!checked(name, value))
            return -1;
        pysum_add(&total, PyFloat_AS_DOUBLE(value));
    }
    *out = pysum_result(&total);
    return 0;
}

static int
set_float(PyObject *d, PyObject *name, double x)
{
    PyObject *v = PyFloat_FromDouble(x);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(d, name, v);
    Py_DECREF(v);
    return rc;
}

/* d[name] += x (from 0.0 when absent), as out.get(c, 0.0) + x does. */
static int
add_float(PyObject *d, PyObject *name, double x)
{
    double was;
    if (get_or_zero(d, name, &was) < 0)
        return -1;
    return set_float(d, name, was + x);
}

/* ---- learning ------------------------------------------------------------------------ */

/* The index of cats[i] among cats[0..i) (a repeated category), else -1. */
static Py_ssize_t
seen_before(PyObject **cats, Py_ssize_t i)
{
    for (Py_ssize_t j = 0; j < i; j++)
        if (cats[j] == cats[i] || PyUnicode_Compare(cats[j], cats[i]) == 0)
            return j;
    return -1;
}

/* add_mass(masses, residual, cats, w, cap): everything is checked before masses changes, so
 * a TypeError (and the Python definition's run after it) never follows a half-done add. */
static PyObject *
add_mass(PyObject *self, PyObject *args)
{
    PyObject *masses, *cats, *seq, **items, *name, *value, *smallest;
    double residual, w, share, least, was;
    Py_ssize_t cap, n, fresh = 0, pos;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&dOdn", exact_dict, &masses, &residual, &cats, &w, &cap))
        return NULL;
    if (!PyList_CheckExact(cats) && !PyTuple_CheckExact(cats)) {
        type_error();
        return NULL;
    }
    if ((seq = PySequence_Fast(cats, "cats")) == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    if (n == 0) { /* Python's w / len(cats) */
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(items[i])) {
            type_error();
            goto fail;
        }
        value = PyDict_GetItemWithError(masses, items[i]);
        if (value == NULL && PyErr_Occurred())
            goto fail;
        if (value != NULL && !PyFloat_CheckExact(value)) {
            type_error();
            goto fail;
        }
        if (value == NULL && seen_before(items, i) < 0)
            fresh++;
    }
    if (PyDict_GET_SIZE(masses) + fresh > cap) { /* an eviction will scan every entry */
        pos = 0;
        while (PyDict_Next(masses, &pos, &name, &value))
            if (!checked(name, value))
                goto fail;
    }
    share = w / (double)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (get_or_zero(masses, items[i], &was) < 0 || set_float(masses, items[i], was + share) < 0)
            goto fail;
    }
    while (PyDict_GET_SIZE(masses) > cap) {
        smallest = NULL;
        least = 0.0;
        pos = 0;
        while (PyDict_Next(masses, &pos, &name, &value)) {
            double m = PyFloat_AS_DOUBLE(value);
            if (smallest == NULL || m < least ||
                (m == least && PyUnicode_Compare(name, smallest) < 0)) {
                smallest = name;
                least = m;
            }
        }
        Py_INCREF(smallest);
        int rc = PyDict_DelItem(masses, smallest);
        Py_DECREF(smallest);
        if (rc < 0)
            goto fail;
        residual += least;
    }
    Py_DECREF(seq);
    return PyFloat_FromDouble(residual);
fail:
    Py_DECREF(seq);
    return NULL;
}

static PyObject *
mean_surprise(PyObject *self, PyObject *args)
{
    PyObject *p, *cats, *seq, *other_value, *name;
    double spread, other, x;
    PySum total = {0.0, 0.0};
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&Od", exact_dict, &p, &cats, &spread))
        return NULL;
    other_value = PyDict_GetItemWithError(p, OTHER);
    if (other_value == NULL || !PyFloat_CheckExact(other_value) || spread == 0.0) {
        if (!PyErr_Occurred()) /* KeyError, ZeroDivisionError: the Python definition's own */
            type_error();
        return NULL;
    }
    other = PyFloat_AS_DOUBLE(other_value) / spread;
    if ((seq = PySequence_Fast(cats, "categories must be a sequence")) == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        Py_DECREF(seq);
        type_error();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        name = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *v = PyDict_GetItemWithError(p, name);
        if (v == NULL && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        if (v != NULL && !PyFloat_CheckExact(v)) {
            Py_DECREF(seq);
            type_error();
            return NULL;
        }
        x = v != NULL ? PyFloat_AS_DOUBLE(v) : other;
        pysum_add(&total, log(x < 1e-9 ? 1e-9 : x));
    }
    Py_DECREF(seq);
    return PyFloat_FromDouble(-pysum_result(&total) / (double)n);
}

/* ---- ranking ------------------------------------------------------------------------- */

typedef struct {
    double p;
    PyObject *name; /* borrowed */
} Entry;

/* 1 if a ranks before b: more probable first, then by name (Python's str order). */
static int
before(const Entry *a, const Entry *b)
{
    if (a->p != b->p)
        return a->p > b->p;
    return PyUnicode_Compare(a->name, b->name) < 0;
}

typedef struct {
    Entry small[32];
    Entry *top;
    Py_ssize_t n, k;
} Best;

/* k < 0 slices in Python ([:k]): TypeError, so the Python definition answers. */
static int
best_init(Best *b, Py_ssize_t k)
{
    if (k < 0)
        return type_error() - 1;
    b->n = 0;
    b->k = k;
    b->top = b->small;
    if (b->k > 32 && (b->top = PyMem_Malloc((size_t)b->k * sizeof(Entry))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
best_free(Best *b)
{
    if (b->top != b->small)
        PyMem_Free(b->top);
}

/* Keep the k best entries offered so far, best first. */
static void
offer(Best *b, double p, PyObject *name)
{
    Entry e = {p, name};
    Py_ssize_t i = b->n;
    if (b->k == 0)
        return;
    if (i == b->k) {
        if (!before(&e, &b->top[b->k - 1]))
            return;
        i = b->k - 1;
    }
    else {
        b->n++;
    }
    while (i > 0 && before(&e, &b->top[i - 1])) {
        b->top[i] = b->top[i - 1];
        i--;
    }
    b->top[i] = e;
}

/* {name: p for the k best, best first}, then _other = max(0, 1 - their sum); frees b. */
static PyObject *
best_dict(Best *b)
{
    double rest;
    PySum total = {0.0, 0.0};
    PyObject *out = PyDict_New();
    if (out == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < b->n; i++) {
        pysum_add(&total, b->top[i].p);
        if (set_float(out, b->top[i].name, b->top[i].p) < 0)
            goto fail;
    }
    rest = 1.0 - pysum_result(&total);
    if (set_float(out, OTHER, rest > 0.0 ? rest : 0.0) < 0)
        goto fail;
    best_free(b);
    return out;
fail:
    Py_XDECREF(out);
    best_free(b);
    return NULL;
}

/* Offer every (name, mass / divisor) of d but _other; -1 on error. */
static int
offer_divided(Best *b, PyObject *d, double divisor)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &name, &value)) {
        if (!checked(name, value))
            return -1;
        if (!is_other(name))
            offer(b, divisor == 1.0 ? PyFloat_AS_DOUBLE(value) : PyFloat_AS_DOUBLE(value) / divisor,
                  name);
    }
    return 0;
}

static PyObject *
top_k(PyObject *self, PyObject *args)
{
    PyObject *p;
    Py_ssize_t k;
    Best b;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&n", exact_dict, &p, &k) || best_init(&b, k) < 0)
        return NULL;
    if (offer_divided(&b, p, 1.0) < 0) {
        best_free(&b);
        return NULL;
    }
    return best_dict(&b);
}

static PyObject *
top_smoothed(PyObject *self, PyObject *args)
{
    PyObject *masses;
    double residual, alpha, total;
    Py_ssize_t k;
    Best b;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&ddn", exact_dict, &masses, &residual, &alpha, &k))
        return NULL;
    if (sum_values(masses, &total) < 0)
        return NULL;
    total = total + residual + alpha;
    if (total == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    if (best_init(&b, k) < 0)
        return NULL;
    if (offer_divided(&b, masses, total) < 0) {
        best_free(&b);
        return NULL;
    }
    return best_dict(&b);
}

static PyObject *
rank_smoothed(PyObject *self, PyObject *args)
{
    PyObject *tracked, *prior, *ranked, *seq = NULL, *name, *out;
    double coef, p;
    Py_ssize_t k, left;
    Best b;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&dO&On", exact_dict, &tracked, &coef, exact_dict, &prior,
                          &ranked, &k))
        return NULL;
    if (best_init(&b, k) < 0)
        return NULL;
    if (offer_divided(&b, tracked, 1.0) < 0)
        goto fail;
    if ((seq = PySequence_Fast(ranked, "ranked must be a sequence")) == NULL)
        goto fail;
    left = b.k;
    for (Py_ssize_t i = 0; left > 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        name = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_CheckExact(name)) {
            type_error();
            goto fail;
        }
        int known = PyDict_Contains(tracked, name);
        if (known < 0)
            goto fail;
        if (known)
            continue;
        if (get_or_zero(prior, name, &p) < 0)
            goto fail;
        offer(&b, coef * p, name);
        left--;
    }
    out = best_dict(&b); /* before seq goes: the names offered from it are borrowed */
    Py_DECREF(seq);
    return out;
fail:
    Py_XDECREF(seq);
    best_free(&b);
    return NULL;
}

/* ---- distributions ------------------------------------------------------------------- */

static PyObject *
mix_horizons(PyObject *self, PyObject *args)
{
    PyObject *short_, *long_, *out, *name, *value;
    double ws, wl, short_res, long_res, a_short, a_long, t_short, t_long;
    Py_ssize_t pos = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "(O&O&ddddd)", exact_dict, &short_, exact_dict, &long_, &ws,
                          &short_res, &long_res, &a_short, &a_long))
        return NULL;
    if (sum_values(short_, &t_short) < 0 || sum_values(long_, &t_long) < 0)
        return NULL;
    t_short = t_short + short_res + a_short;
    t_long = t_long + long_res + a_long;
    if (t_short == 0.0 || t_long == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    wl = 1.0 - ws;
    if ((out = PyDict_New()) == NULL)
        return NULL;
    while (PyDict_Next(long_, &pos, &name, &value))
        if (set_float(out, name, wl * (PyFloat_AS_DOUBLE(value) / t_long)) < 0)
            goto fail;
    pos = 0;
    while (PyDict_Next(short_, &pos, &name, &value))
        if (add_float(out, name, ws * (PyFloat_AS_DOUBLE(value) / t_short)) < 0)
            goto fail;
    if (set_float(out, OTHER,
                  (1.0 - ws) * ((long_res + a_long) / t_long) +
                      ws * ((short_res + a_short) / t_short)) < 0)
        goto fail;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* One horizon of smoothed_tracked: its masses into out; its share of coef. */
static int
smooth_horizon(PyObject *out, PyObject *masses, PyObject *prior, double weight, double res,
               double alpha, double *coef)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    double total, untracked = 1.0, spread, p;
    PySum tracked = {0.0, 0.0};
    if (sum_values(masses, &total) < 0)
        return -1;
    total = total + res + alpha;
    if (total == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return -1;
    }
    if (res == 0.0) { /* nothing evicted: no mass to spread over the untracked */
        *coef += weight * alpha / total;
        while (PyDict_Next(masses, &pos, &name, &value))
            if (add_float(out, name, weight * PyFloat_AS_DOUBLE(value) / total) < 0)
                return -1;
        return 0;
    }
    while (PyDict_Next(masses, &pos, &name, &value)) {
        if (get_or_zero(prior, name, &p) < 0)
            return -1;
        pysum_add(&tracked, p);
    }
    untracked = 1.0 - pysum_result(&tracked);
    spread = untracked > 1e-12 ? res / untracked : 0.0;
    *coef += weight * (alpha + spread) / total;
    pos = 0;
    while (PyDict_Next(masses, &pos, &name, &value)) {
        if (get_or_zero(prior, name, &p) < 0 ||
            add_float(out, name, weight * (PyFloat_AS_DOUBLE(value) - spread * p) / total) < 0)
            return -1;
    }
    return 0;
}

static PyObject *
smoothed_tracked(PyObject *self, PyObject *args)
{
    PyObject *short_, *long_, *prior, *out, *name, *value, *result;
    double ws, short_res, long_res, a_short, a_long, coef = 0.0, p;
    Py_ssize_t pos = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "(O&O&ddddd)O&", exact_dict, &short_, exact_dict, &long_, &ws,
                          &short_res, &long_res, &a_short, &a_long, exact_dict, &prior))
        return NULL;
    if ((out = PyDict_New()) == NULL)
        return NULL;
    if (smooth_horizon(out, short_, prior, ws, short_res, a_short, &coef) < 0 ||
        smooth_horizon(out, long_, prior, 1.0 - ws, long_res, a_long, &coef) < 0)
        goto fail;
    while (PyDict_Next(out, &pos, &name, &value)) {
        if (get_or_zero(prior, name, &p) < 0)
            goto fail;
        /* value is a float this module made; replacing an existing key keeps pos valid */
        if (set_float(out, name, PyFloat_AS_DOUBLE(value) + coef * p) < 0)
            goto fail;
    }
    result = Py_BuildValue("(Nd)", out, coef);
    return result;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
total_variation(PyObject *self, PyObject *args)
{
    PyObject *before_, *after, *name, *value;
    Py_ssize_t pos = 0;
    double was, total;
    PySum moved = {0.0, 0.0}, gone = {0.0, 0.0};
    int any_gone = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&O&", exact_dict, &before_, exact_dict, &after))
        return NULL;
    while (PyDict_Next(after, &pos, &name, &value)) {
        if (!checked(name, value) || get_or_zero(before_, name, &was) < 0)
            return NULL;
        pysum_add(&moved, fabs(PyFloat_AS_DOUBLE(value) - was));
    }
    pos = 0;
    while (PyDict_Next(before_, &pos, &name, &value)) {
        if (!checked(name, value))
            return NULL;
        int kept = PyDict_Contains(after, name);
        if (kept < 0)
            return NULL;
        if (!kept) {
            pysum_add(&gone, PyFloat_AS_DOUBLE(value));
            any_gone = 1;
        }
    }
    total = pysum_result(&moved);
    if (any_gone)
        total += pysum_result(&gone);
    return PyFloat_FromDouble(0.5 * total);
}

static PyObject *
entropy(PyObject *self, PyObject *args)
{
    PyObject *p, *name, *value;
    Py_ssize_t pos = 0, terms = 0;
    double v;
    PySum total = {0.0, 0.0};
    (void)self;
    if (!PyArg_ParseTuple(args, "O&", exact_dict, &p))
        return NULL;
    while (PyDict_Next(p, &pos, &name, &value)) {
        if (!PyFloat_CheckExact(value)) {
            type_error();
            return NULL;
        }
        v = PyFloat_AS_DOUBLE(value);
        if (v > 0.0) {
            pysum_add(&total, v * log(v));
            terms++;
        }
    }
    if (terms == 0) /* Python's -sum([]): the int 0 */
        return PyLong_FromLong(0);
    return PyFloat_FromDouble(-pysum_result(&total));
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS, "masses.top_k, in C."},
    {"top_smoothed", top_smoothed, METH_VARARGS, "masses.top_smoothed, in C."},
    {"rank_smoothed", rank_smoothed, METH_VARARGS, "masses.rank_smoothed, in C."},
    {"mix_horizons", mix_horizons, METH_VARARGS, "masses.mix_horizons, in C."},
    {"smoothed_tracked", smoothed_tracked, METH_VARARGS, "masses.smoothed_tracked, in C."},
    {"total_variation", total_variation, METH_VARARGS, "masses.total_variation, in C."},
    {"entropy", entropy, METH_VARARGS, "masses.entropy, in C."},
    {"add_mass", add_mass, METH_VARARGS, "masses.add_mass, in C."},
    {"mean_surprise", mean_surprise, METH_VARARGS, "masses.mean_surprise, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_masses", "masses.py's arithmetic, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__masses(void)
{
    if ((OTHER = PyUnicode_InternFromString("_other")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
