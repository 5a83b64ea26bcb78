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
#include <stddef.h>
#include <structmember.h>

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

/* Checks add_mass's arguments (masses: an exact dict; cats: n exact str) before anything
 * changes: -1 with TypeError when the C code does not take them. */
static int
add_mass_check(PyObject *masses, PyObject **items, Py_ssize_t n, Py_ssize_t cap)
{
    PyObject *name, *value;
    Py_ssize_t fresh = 0, pos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(items[i]))
            return type_error() - 1;
        value = PyDict_GetItemWithError(masses, items[i]);
        if (value == NULL && PyErr_Occurred())
            return -1;
        if (value != NULL && !PyFloat_CheckExact(value))
            return type_error() - 1;
        if (value == NULL && seen_before(items, i) < 0)
            fresh++;
    }
    if (PyDict_GET_SIZE(masses) + fresh > cap) { /* an eviction will scan every entry */
        while (PyDict_Next(masses, &pos, &name, &value))
            if (!checked(name, value))
                return -1;
    }
    return 0;
}

/* add_mass on checked arguments (add_mass_check), n > 0; the new residual in *residual. */
static int
add_mass_of(PyObject *masses, double *residual, PyObject **items, Py_ssize_t n, double w,
            Py_ssize_t cap)
{
    PyObject *name, *value, *smallest;
    double share = w / (double)n, least, was;
    Py_ssize_t pos;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (get_or_zero(masses, items[i], &was) < 0 || set_float(masses, items[i], was + share) < 0)
            return -1;
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
            return -1;
        *residual += least;
    }
    return 0;
}

/* The categories of an event: an exact list or tuple, borrowed as an array of n items. */
static int
category_items(PyObject *cats, PyObject ***items, Py_ssize_t *n)
{
    if (PyList_CheckExact(cats)) {
        *items = ((PyListObject *)cats)->ob_item;
        *n = PyList_GET_SIZE(cats);
    }
    else if (PyTuple_CheckExact(cats)) {
        *items = ((PyTupleObject *)cats)->ob_item;
        *n = PyTuple_GET_SIZE(cats);
    }
    else {
        return type_error() - 1;
    }
    return 0;
}

/* add_mass(masses, residual, cats, w, cap): everything is checked before masses changes, so
 * a TypeError (and the Python definition's run after it) never follows a half-done add. */
static PyObject *
add_mass(PyObject *self, PyObject *args)
{
    PyObject *masses, *cats, **items;
    double residual, w;
    Py_ssize_t cap, n;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&dOdn", exact_dict, &masses, &residual, &cats, &w, &cap) ||
        category_items(cats, &items, &n) < 0)
        return NULL;
    if (n == 0) { /* Python's w / len(cats) */
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    if (add_mass_check(masses, items, n, cap) < 0 ||
        add_mass_of(masses, &residual, items, n, w, cap) < 0)
        return NULL;
    return PyFloat_FromDouble(residual);
}

/* mean_surprise of n categories (n > 0); -1 with the Python definition's error or TypeError. */
static int
mean_surprise_of(PyObject *p, PyObject **items, Py_ssize_t n, double spread, double *out)
{
    PyObject *other_value = PyDict_GetItemWithError(p, OTHER);
    double other, x;
    PySum total = {0.0, 0.0};
    if (other_value == NULL || !PyFloat_CheckExact(other_value) || spread == 0.0) {
        if (!PyErr_Occurred()) /* KeyError, ZeroDivisionError: the Python definition's own */
            type_error();
        return -1;
    }
    other = PyFloat_AS_DOUBLE(other_value) / spread;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(p, items[i]);
        if (v == NULL && PyErr_Occurred())
            return -1;
        if (v != NULL && !PyFloat_CheckExact(v))
            return type_error() - 1;
        x = v != NULL ? PyFloat_AS_DOUBLE(v) : other;
        pysum_add(&total, log(x < 1e-9 ? 1e-9 : x));
    }
    *out = -pysum_result(&total) / (double)n;
    return 0;
}

static PyObject *
mean_surprise(PyObject *self, PyObject *args)
{
    PyObject *p, *cats, *seq;
    double spread, out;
    Py_ssize_t n;
    int rc;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&Od", exact_dict, &p, &cats, &spread))
        return NULL;
    if ((seq = PySequence_Fast(cats, "categories must be a sequence")) == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    rc = n == 0 ? type_error() - 1 : mean_surprise_of(p, PySequence_Fast_ITEMS(seq), n, spread, &out);
    Py_DECREF(seq);
    return rc < 0 ? NULL : PyFloat_FromDouble(out);
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
top_k_of(PyObject *p, Py_ssize_t k)
{
    Best b;
    if (best_init(&b, k) < 0)
        return NULL;
    if (offer_divided(&b, p, 1.0) < 0) {
        best_free(&b);
        return NULL;
    }
    return best_dict(&b);
}

static PyObject *
top_k(PyObject *self, PyObject *args)
{
    PyObject *p;
    Py_ssize_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&n", exact_dict, &p, &k))
        return NULL;
    return top_k_of(p, k);
}

static PyObject *
top_smoothed_of(PyObject *masses, double residual, double alpha, Py_ssize_t k)
{
    double total;
    Best b;
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
top_smoothed(PyObject *self, PyObject *args)
{
    PyObject *masses;
    double residual, alpha;
    Py_ssize_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&ddn", exact_dict, &masses, &residual, &alpha, &k))
        return NULL;
    return top_smoothed_of(masses, residual, alpha, k);
}

static PyObject *
rank_smoothed_of(PyObject *tracked, double coef, PyObject *prior, PyObject *ranked, Py_ssize_t k)
{
    PyObject *seq = NULL, *name, *out;
    double p;
    Py_ssize_t left;
    Best b;
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

static PyObject *
rank_smoothed(PyObject *self, PyObject *args)
{
    PyObject *tracked, *prior, *ranked;
    double coef;
    Py_ssize_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&dO&On", exact_dict, &tracked, &coef, exact_dict, &prior,
                          &ranked, &k))
        return NULL;
    return rank_smoothed_of(tracked, coef, prior, ranked, k);
}

/* Offer name at (online part) + w * q: the online part is tracked[name], else coef * prior[name]
 * when name is in ranked_set, else nothing (0.0). */
static int
offer_fused(Best *b, PyObject *name, double q, PyObject *tracked, double coef, PyObject *prior,
            PyObject *ranked_set, double online, double w)
{
    double p, part = 0.0;
    PyObject *v = PyDict_GetItemWithError(tracked, name);
    if (v == NULL && PyErr_Occurred())
        return -1;
    if (v != NULL) {
        if (!PyFloat_CheckExact(v))
            return type_error() - 1;
        part = online * PyFloat_AS_DOUBLE(v);
    }
    else {
        int ranked = PySet_Contains(ranked_set, name);
        if (ranked < 0)
            return -1;
        if (ranked) {
            if (get_or_zero(prior, name, &p) < 0)
                return -1;
            part = online * (coef * p);
        }
    }
    offer(b, part + w * q, name);
    return 0;
}

/* fused_rank: rank_smoothed's candidates and sequence's categories, each at
 * (1 - w) * online + w * sequence, the k best; a candidate sequence names is offered once,
 * at its mixed value (the Python definition's dict holds one value a name). */
static PyObject *
fused_rank(PyObject *self, PyObject *args)
{
    PyObject *tracked, *prior, *ranked, *ranked_set, *sequence, *smoothed, *name, *value, *out;
    double coef, w, online;
    Py_ssize_t k, pos = 0;
    Best b;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&dO&OOO&dn", exact_dict, &tracked, &coef, exact_dict, &prior,
                          &ranked, &ranked_set, exact_dict, &sequence, &w, &k))
        return NULL;
    if (!PyAnySet_CheckExact(ranked_set))
        return type_error(), NULL;
    while (PyDict_Next(sequence, &pos, &name, &value)) /* checked before anything is built */
        if (!checked(name, value))
            return NULL;
    if ((smoothed = rank_smoothed_of(tracked, coef, prior, ranked, k)) == NULL)
        return NULL;
    online = 1.0 - w;
    if (best_init(&b, k) < 0)
        goto fail_smoothed;
    pos = 0;
    while (PyDict_Next(smoothed, &pos, &name, &value)) {
        int named = PyDict_Contains(sequence, name);
        if (named < 0)
            goto fail;
        if (!named && !is_other(name))
            offer(&b, online * PyFloat_AS_DOUBLE(value), name);
    }
    pos = 0;
    while (PyDict_Next(sequence, &pos, &name, &value))
        if (!is_other(name) && offer_fused(&b, name, PyFloat_AS_DOUBLE(value), tracked, coef,
                                           prior, ranked_set, online, w) < 0)
            goto fail;
    out = best_dict(&b); /* before smoothed goes: names offered from it are borrowed */
    Py_DECREF(smoothed);
    return out;
fail:
    best_free(&b);
fail_smoothed:
    Py_DECREF(smoothed);
    return NULL;
}

/* ---- distributions ------------------------------------------------------------------- */

/* A user's two horizons as masses.Horizons holds them. */
typedef struct {
    PyObject *short_, *long_; /* borrowed */
    double ws, short_res, long_res, a_short, a_long;
} HorizonParts;

/* "O&" converter of a Horizons tuple. */
static int
horizon_parts(PyObject *obj, void *out)
{
    HorizonParts *h = out;
    if (!PyTuple_Check(obj))
        return type_error();
    return PyArg_ParseTuple(obj, "O&O&ddddd", exact_dict, &h->short_, exact_dict, &h->long_,
                            &h->ws, &h->short_res, &h->long_res, &h->a_short, &h->a_long);
}

static PyObject *
mix_horizons_of(const HorizonParts *h)
{
    PyObject *out, *name, *value;
    double wl, t_short, t_long;
    Py_ssize_t pos = 0;
    if (sum_values(h->short_, &t_short) < 0 || sum_values(h->long_, &t_long) < 0)
        return NULL;
    t_short = t_short + h->short_res + h->a_short;
    t_long = t_long + h->long_res + h->a_long;
    if (t_short == 0.0 || t_long == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    wl = 1.0 - h->ws;
    /* Python's two passes (the long horizon's entries, then the short one's added), each
     * entry written once: the same values, in the same order */
    out = _PyDict_NewPresized(PyDict_GET_SIZE(h->long_) + PyDict_GET_SIZE(h->short_) + 1);
    if (out == NULL)
        return NULL;
    while (PyDict_Next(h->long_, &pos, &name, &value)) {
        double p = wl * (PyFloat_AS_DOUBLE(value) / t_long);
        PyObject *also = PyDict_GetItemWithError(h->short_, name);
        if (also == NULL && PyErr_Occurred())
            goto fail;
        if (also != NULL)
            p = p + h->ws * (PyFloat_AS_DOUBLE(also) / t_short);
        if (set_float(out, name, p) < 0)
            goto fail;
    }
    pos = 0;
    while (PyDict_Next(h->short_, &pos, &name, &value)) {
        int known = PyDict_Contains(h->long_, name);
        if (known < 0 ||
            (!known && set_float(out, name, 0.0 + h->ws * (PyFloat_AS_DOUBLE(value) / t_short)) < 0))
            goto fail;
    }
    if (set_float(out, OTHER,
                  (1.0 - h->ws) * ((h->long_res + h->a_long) / t_long) +
                      h->ws * ((h->short_res + h->a_short) / t_short)) < 0)
        goto fail;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
mix_horizons(PyObject *self, PyObject *args)
{
    HorizonParts h;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&", horizon_parts, &h))
        return NULL;
    return mix_horizons_of(&h);
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

/* smoothed_tracked's dict, its coef in *coef. */
static PyObject *
smoothed_tracked_of(const HorizonParts *h, PyObject *prior, double *coef)
{
    PyObject *out, *name, *value;
    Py_ssize_t pos = 0;
    double p;
    *coef = 0.0;
    if ((out = PyDict_New()) == NULL)
        return NULL;
    if (smooth_horizon(out, h->short_, prior, h->ws, h->short_res, h->a_short, coef) < 0 ||
        smooth_horizon(out, h->long_, prior, 1.0 - h->ws, h->long_res, h->a_long, coef) < 0)
        goto fail;
    while (PyDict_Next(out, &pos, &name, &value)) {
        if (get_or_zero(prior, name, &p) < 0)
            goto fail;
        /* value is a float this module made; replacing an existing key keeps pos valid */
        if (set_float(out, name, PyFloat_AS_DOUBLE(value) + *coef * p) < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
smoothed_tracked(PyObject *self, PyObject *args)
{
    PyObject *prior, *out;
    HorizonParts h;
    double coef;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&O&", horizon_parts, &h, exact_dict, &prior))
        return NULL;
    if ((out = smoothed_tracked_of(&h, prior, &coef)) == NULL)
        return NULL;
    return Py_BuildValue("(Nd)", out, coef);
}

static int
total_variation_of(PyObject *before_, PyObject *after, double *out)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    double was, total;
    PySum moved = {0.0, 0.0}, gone = {0.0, 0.0};
    int any_gone = 0;
    while (PyDict_Next(after, &pos, &name, &value)) {
        if (!checked(name, value) || get_or_zero(before_, name, &was) < 0)
            return -1;
        pysum_add(&moved, fabs(PyFloat_AS_DOUBLE(value) - was));
    }
    pos = 0;
    while (PyDict_Next(before_, &pos, &name, &value)) {
        if (!checked(name, value))
            return -1;
        int kept = PyDict_Contains(after, name);
        if (kept < 0)
            return -1;
        if (!kept) {
            pysum_add(&gone, PyFloat_AS_DOUBLE(value));
            any_gone = 1;
        }
    }
    total = pysum_result(&moved);
    if (any_gone)
        total += pysum_result(&gone);
    *out = 0.5 * total;
    return 0;
}

static PyObject *
total_variation(PyObject *self, PyObject *args)
{
    PyObject *before_, *after;
    double out;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&O&", exact_dict, &before_, exact_dict, &after) ||
        total_variation_of(before_, after, &out) < 0)
        return NULL;
    return PyFloat_FromDouble(out);
}

static PyObject *
entropy_of(PyObject *p)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0, terms = 0;
    double v;
    PySum total = {0.0, 0.0};
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

static PyObject *
entropy(PyObject *self, PyObject *args)
{
    PyObject *p;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&", exact_dict, &p))
        return NULL;
    return entropy_of(p);
}

/* ---- a snapshot's numbers, in one call ----------------------------------------------- */

/* masses.snapshot_tops: smoothing is read only with a prior (not None). */
static PyObject *
snapshot_tops_of(PyObject *own, const HorizonParts *parts, const HorizonParts *smoothing,
                 PyObject *prior, PyObject *ranked, Py_ssize_t k)
{
    PyObject *own_top = NULL, *short_top = NULL, *long_top = NULL, *dist = NULL, *h = NULL;
    PyObject *tracked;
    double coef;
    if ((own_top = top_k_of(own, k)) == NULL ||
        (short_top = top_smoothed_of(parts->short_, parts->short_res, parts->a_short, k)) == NULL ||
        (long_top = top_smoothed_of(parts->long_, parts->long_res, parts->a_long, k)) == NULL)
        goto fail;
    if (prior == Py_None) {
        dist = PyDict_Copy(own_top);
    }
    else if ((tracked = smoothed_tracked_of(smoothing, prior, &coef)) != NULL) {
        dist = rank_smoothed_of(tracked, coef, prior, ranked, k);
        Py_DECREF(tracked);
    }
    if (dist == NULL || (h = entropy_of(dist)) == NULL)
        goto fail;
    return Py_BuildValue("(NNNNN)", own_top, short_top, long_top, dist, h);
fail:
    Py_XDECREF(own_top);
    Py_XDECREF(short_top);
    Py_XDECREF(long_top);
    Py_XDECREF(dist);
    return NULL;
}

static PyObject *
snapshot_tops(PyObject *self, PyObject *args)
{
    PyObject *own, *prior_parts, *prior, *ranked;
    HorizonParts parts, smoothing;
    Py_ssize_t k;
    (void)self;
    if (!PyArg_ParseTuple(args, "O&O&OOOn", exact_dict, &own, horizon_parts, &parts,
                          &prior_parts, &prior, &ranked, &k))
        return NULL;
    if (prior != Py_None && (!exact_dict(prior, &prior) || !horizon_parts(prior_parts, &smoothing)))
        return NULL;
    return snapshot_tops_of(own, &parts, &smoothing, prior, ranked, k);
}

/* ---- one event learned: user.py's learn_event (UserInterest.learn_and_predict) --------- */

/* Attribute names of InterestConfig and PopulationInterest, and an event's keys. */
static PyObject *A_short_hl, *A_long_hl, *A_short_ehl, *A_long_ehl, *A_short_weight,
    *A_drift_short_weight, *A_settle, *A_other_strength, *A_prior_strength, *A_other_spread,
    *A_max_categories, *A_weights, *A_pop_cold, *A_pop_cap, *A_pop_mix, *A_pop_smoothing,
    *A_drift_min_instances, *A_drift_delta, *A_drift_threshold, *K_ts, *K_weight, *K_event_type,
    *K_categories, *K_view;

/* An InterestConfig's numbers, read once per config object (it is frozen); both held while
 * cached, so that no other object takes their addresses. */
typedef struct {
    PyObject *cfg;
    PyObject *weights; /* event_weights, an exact dict */
    double short_hl, long_hl, short_ehl, long_ehl, short_weight, drift_short_weight, settle,
        other_strength, prior_strength, other_spread, pop_cold_events, pop_mix_memory,
        pop_smoothing;
    Py_ssize_t cap, pop_cap;
} Config;

static Config CONFIG;

/* ---- an estimator's fields: the C layout under UserInterest and SurpriseDrift ---------- */

/* The attributes user.py's UserInterest and drift.py's SurpriseDrift keep, in one block that
 * the learning reads and writes without looking a name up or allocating. Objects (dicts, the
 * config, the caches) are held as an attribute holds them; numbers are held as C numbers:
 * an attribute set to an int where a float is kept reads back as that float, a bool kept
 * reads back as True or False (its truth). Until a field is set it reads as a missing
 * attribute. */
#define NUMBERS_HEAD \
    PyObject_HEAD    \
    uint32_t set;  /* a bit for each number field that is set */ \
    uint32_t none; /* ... and for each optional float field that holds None */

typedef struct {
    NUMBERS_HEAD
} Numbers;

typedef struct {
    NUMBERS_HEAD
    PyObject *config, *cfg, *own, *own_top, *scales, *short_, *long_, *drift;
    double t, r, short_res, long_res;
    Py_ssize_t nr, n, since_drift;
    int drift_now;
} InterestFields;

typedef struct {
    NUMBERS_HEAD
    PyObject *min_instances, *delta, *threshold, *alpha;
    double count, mean, sum_increase, min_increase;
    int detected;
} DriftFields;

#define INTEREST_OBJECTS 8
#define DRIFT_OBJECTS 4

/* The bits of the number fields. */
enum {
    U_T = 1 << 0, U_R = 1 << 1, U_SHORT_RES = 1 << 2, U_LONG_RES = 1 << 3, U_NR = 1 << 4,
    U_N = 1 << 5, U_SINCE = 1 << 6, U_DRIFT_NOW = 1 << 7,
    U_NUMBERS = (1 << 8) - 1,
    D_COUNT = 1 << 0, D_MEAN = 1 << 1, D_SUM = 1 << 2, D_MIN = 1 << 3, D_DETECTED = 1 << 4,
    D_NUMBERS = (1 << 5) - 1,
};

typedef enum { NUM_FLOAT, NUM_OPTIONAL, NUM_INT, NUM_BOOL } NumberKind;

typedef struct {
    const char *name;
    Py_ssize_t offset;
    NumberKind kind;
    uint32_t bit;
} NumberField;

static PyObject *
number_get(PyObject *self, void *closure)
{
    const NumberField *nf = closure;
    const Numbers *o = (Numbers *)self;
    const char *at = (char *)self + nf->offset;
    if (!(o->set & nf->bit))
        return PyErr_Format(PyExc_AttributeError, "'%.100s' object has no attribute '%s'",
                            Py_TYPE(self)->tp_name, nf->name);
    switch (nf->kind) {
    case NUM_OPTIONAL:
        if (o->none & nf->bit)
            Py_RETURN_NONE;
        return PyFloat_FromDouble(*(const double *)at);
    case NUM_FLOAT:
        return PyFloat_FromDouble(*(const double *)at);
    case NUM_INT:
        return PyLong_FromSsize_t(*(const Py_ssize_t *)at);
    default:
        return PyBool_FromLong(*(const int *)at);
    }
}

static int
number_set(PyObject *self, PyObject *value, void *closure)
{
    const NumberField *nf = closure;
    Numbers *o = (Numbers *)self;
    char *at = (char *)self + nf->offset;
    double x;
    Py_ssize_t i;
    int b;
    if (value == NULL) { /* del */
        if (!(o->set & nf->bit)) {
            PyErr_SetString(PyExc_AttributeError, nf->name);
            return -1;
        }
        o->set &= ~nf->bit;
        return 0;
    }
    switch (nf->kind) {
    case NUM_OPTIONAL:
    case NUM_FLOAT:
        if (nf->kind == NUM_OPTIONAL && value == Py_None) {
            o->none |= nf->bit;
            break;
        }
        if (PyFloat_Check(value))
            x = PyFloat_AS_DOUBLE(value);
        else if (PyLong_Check(value)) {
            if ((x = PyLong_AsDouble(value)) == -1.0 && PyErr_Occurred())
                return -1;
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s must be a number%s, not %.100s", nf->name,
                         nf->kind == NUM_OPTIONAL ? " or None" : "", Py_TYPE(value)->tp_name);
            return -1;
        }
        *(double *)at = x;
        o->none &= ~nf->bit;
        break;
    case NUM_INT:
        if (!PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", nf->name,
                         Py_TYPE(value)->tp_name);
            return -1;
        }
        if ((i = PyLong_AsSsize_t(value)) == -1 && PyErr_Occurred())
            return -1;
        *(Py_ssize_t *)at = i;
        break;
    default:
        if ((b = PyObject_IsTrue(value)) < 0)
            return -1;
        *(int *)at = b;
    }
    o->set |= nf->bit;
    return 0;
}

#define NUMBER(type, name, member, kind, bit) {name, offsetof(type, member), kind, bit}

static NumberField interest_numbers[] = {
    NUMBER(InterestFields, "_t", t, NUM_OPTIONAL, U_T),
    NUMBER(InterestFields, "_r", r, NUM_OPTIONAL, U_R),
    NUMBER(InterestFields, "_short_res", short_res, NUM_FLOAT, U_SHORT_RES),
    NUMBER(InterestFields, "_long_res", long_res, NUM_FLOAT, U_LONG_RES),
    NUMBER(InterestFields, "_nr", nr, NUM_INT, U_NR),
    NUMBER(InterestFields, "_n", n, NUM_INT, U_N),
    NUMBER(InterestFields, "_since_drift", since_drift, NUM_INT, U_SINCE),
    NUMBER(InterestFields, "_drift_now", drift_now, NUM_BOOL, U_DRIFT_NOW),
};

static NumberField drift_numbers[] = {
    NUMBER(DriftFields, "_count", count, NUM_FLOAT, D_COUNT),
    NUMBER(DriftFields, "_mean", mean, NUM_FLOAT, D_MEAN),
    NUMBER(DriftFields, "_sum_increase", sum_increase, NUM_FLOAT, D_SUM),
    NUMBER(DriftFields, "_min_increase", min_increase, NUM_FLOAT, D_MIN),
    NUMBER(DriftFields, "_drift_detected", detected, NUM_BOOL, D_DETECTED),
};

/* Filled from the tables above when the module loads (getset_of). */
#define COUNT(table) ((Py_ssize_t)(sizeof table / sizeof table[0]))
#define INTEREST_NUMBERS COUNT(interest_numbers)
#define DRIFT_NUMBERS COUNT(drift_numbers)

static PyGetSetDef interest_getset[INTEREST_NUMBERS + 1], drift_getset[DRIFT_NUMBERS + 1];

static void
getset_of(NumberField *numbers, Py_ssize_t n, PyGetSetDef *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyGetSetDef g = {numbers[i].name, number_get, number_set, NULL, &numbers[i]};
        out[i] = g;
    }
}

static int
objects_traverse(PyObject **f, Py_ssize_t n, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < n; i++)
        Py_VISIT(f[i]);
    return 0;
}

static void
objects_clear(PyObject **f, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        Py_CLEAR(f[i]);
}

/* tp_traverse, tp_clear and tp_dealloc of a fields type: its object fields from first on. */
#define OBJECT_FIELDS(prefix, type, first, count)                                     \
    static int prefix##_traverse(PyObject *self, visitproc visit, void *arg)          \
    {                                                                                 \
        return objects_traverse(&((type *)self)->first, count, visit, arg);           \
    }                                                                                 \
    static int prefix##_clear(PyObject *self)                                         \
    {                                                                                 \
        objects_clear(&((type *)self)->first, count);                                 \
        return 0;                                                                     \
    }                                                                                 \
    static void prefix##_dealloc(PyObject *self)                                      \
    {                                                                                 \
        PyObject_GC_UnTrack(self);                                                    \
        prefix##_clear(self);                                                         \
        Py_TYPE(self)->tp_free(self);                                                 \
    }

OBJECT_FIELDS(interest, InterestFields, config, INTEREST_OBJECTS)
OBJECT_FIELDS(drift, DriftFields, min_instances, DRIFT_OBJECTS)

#define FIELD(type, name, member) {name, T_OBJECT_EX, offsetof(type, member), 0, NULL}

static PyMemberDef interest_members[] = {
    FIELD(InterestFields, "config", config),
    FIELD(InterestFields, "_cfg", cfg),
    FIELD(InterestFields, "_own", own),
    FIELD(InterestFields, "_own_top", own_top),
    FIELD(InterestFields, "_scales", scales),
    FIELD(InterestFields, "_short", short_),
    FIELD(InterestFields, "_long", long_),
    FIELD(InterestFields, "_drift", drift),
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef drift_members[] = {
    FIELD(DriftFields, "min_instances", min_instances),
    FIELD(DriftFields, "delta", delta),
    FIELD(DriftFields, "threshold", threshold),
    FIELD(DriftFields, "alpha", alpha),
    {NULL, 0, 0, 0, NULL},
};

#define FIELDS_TYPE(prefix, type, name, doc)                                          \
    static PyTypeObject prefix##Type = {                                              \
        PyVarObject_HEAD_INIT(NULL, 0)                                                \
        .tp_name = "models._masses." name,                                            \
        .tp_basicsize = sizeof(type),                                                 \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,    \
        .tp_doc = doc,                                                                \
        .tp_traverse = prefix##_traverse,                                             \
        .tp_clear = prefix##_clear,                                                   \
        .tp_dealloc = prefix##_dealloc,                                               \
        .tp_members = prefix##_members,                                               \
        .tp_getset = prefix##_getset,                                                 \
        .tp_new = PyType_GenericNew,                                                  \
    };

FIELDS_TYPE(interest, InterestFields, "InterestFields",
            "UserInterest's attributes as one C block (user.py).")
FIELDS_TYPE(drift, DriftFields, "DriftFields",
            "SurpriseDrift's attributes as one C block (drift.py).")

/* population.py's PopulationInterest and DecayedCounts, the same way. */
typedef struct {
    NUMBERS_HEAD
    PyObject *config, *cfg, *long_, *short_, *scores;
    double t;
    Py_ssize_t n;
    int two;
} PopulationFields;

typedef struct {
    NUMBERS_HEAD
    PyObject *half_life, *masses, *dense_index, *dense;
    double residual, ref, total;
} CountsFields;

#define POPULATION_OBJECTS 5
#define COUNTS_OBJECTS 4

enum {
    P_T = 1 << 0, P_N = 1 << 1, P_TWO = 1 << 2, P_NUMBERS = (1 << 3) - 1,
    C_RESIDUAL = 1 << 0, C_REF = 1 << 1, C_TOTAL = 1 << 2, C_NUMBERS = (1 << 3) - 1,
};

static NumberField population_numbers[] = {
    NUMBER(PopulationFields, "_t", t, NUM_OPTIONAL, P_T),
    NUMBER(PopulationFields, "_n", n, NUM_INT, P_N),
    NUMBER(PopulationFields, "_two", two, NUM_BOOL, P_TWO),
};

static NumberField counts_numbers[] = {
    NUMBER(CountsFields, "residual", residual, NUM_FLOAT, C_RESIDUAL),
    NUMBER(CountsFields, "ref", ref, NUM_OPTIONAL, C_REF),
    NUMBER(CountsFields, "total", total, NUM_FLOAT, C_TOTAL),
};

#define POPULATION_NUMBERS COUNT(population_numbers)
#define COUNTS_NUMBERS COUNT(counts_numbers)

static PyGetSetDef population_getset[POPULATION_NUMBERS + 1], counts_getset[COUNTS_NUMBERS + 1];

OBJECT_FIELDS(population, PopulationFields, config, POPULATION_OBJECTS)
OBJECT_FIELDS(counts, CountsFields, half_life, COUNTS_OBJECTS)

static PyMemberDef population_members[] = {
    FIELD(PopulationFields, "config", config),
    FIELD(PopulationFields, "_cfg", cfg),
    FIELD(PopulationFields, "_long", long_),
    FIELD(PopulationFields, "_short", short_),
    FIELD(PopulationFields, "_scores", scores),
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef counts_members[] = {
    FIELD(CountsFields, "half_life", half_life),
    FIELD(CountsFields, "masses", masses),
    FIELD(CountsFields, "_dense_index", dense_index),
    FIELD(CountsFields, "_dense", dense),
    {NULL, 0, 0, 0, NULL},
};

FIELDS_TYPE(population, PopulationFields, "PopulationFields",
            "PopulationInterest's attributes as one C block (population.py).")
FIELDS_TYPE(counts, CountsFields, "CountsFields",
            "DecayedCounts' attributes as one C block (population.py).")

/* The fields of an estimator with UserInterest's layout whose drift detector has
 * SurpriseDrift's (else TypeError, and the Python definition runs). */
static InterestFields *
interest_fields(PyObject *u, DriftFields **drift)
{
    InterestFields *f = (InterestFields *)u;
    if (!PyObject_TypeCheck(u, &interestType) || (f->set & U_NUMBERS) != U_NUMBERS ||
        f->drift == NULL || !PyObject_TypeCheck(f->drift, &driftType) ||
        (((DriftFields *)f->drift)->set & D_NUMBERS) != D_NUMBERS)
        return type_error(), NULL;
    *drift = (DriftFields *)f->drift;
    return f;
}

/* A field's value read as the C code takes it (a field not set, NULL, or another type:
 * TypeError, where the Python definition raises its own error or reads it as it is). */

/* A float or an int as a double (an int is converted as Python's arithmetic does). */
static int
number_of(PyObject *v, double *out)
{
    if (v != NULL && PyFloat_CheckExact(v))
        *out = PyFloat_AS_DOUBLE(v);
    else if (v != NULL && PyLong_CheckExact(v))
        return (*out = PyLong_AsDouble(v)) == -1.0 && PyErr_Occurred() ? -1 : 0;
    else
        return type_error() - 1;
    return 0;
}

static int
float_of(PyObject *v, double *out)
{
    if (v == NULL || !PyFloat_CheckExact(v))
        return type_error() - 1;
    *out = PyFloat_AS_DOUBLE(v);
    return 0;
}

static int
int_of(PyObject *v, Py_ssize_t *out)
{
    if (v == NULL || !PyLong_CheckExact(v))
        return type_error() - 1;
    return (*out = PyLong_AsSsize_t(v)) == -1 && PyErr_Occurred() ? -1 : 0;
}

/* The same of an attribute, read by name (the config's). */
static int
number_attr(PyObject *obj, PyObject *name, double *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    int rc;
    if (v == NULL)
        return -1;
    rc = number_of(v, out);
    Py_DECREF(v);
    return rc;
}

static int
int_attr(PyObject *obj, PyObject *name, Py_ssize_t *out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    int rc;
    if (v == NULL)
        return -1;
    rc = int_of(v, out);
    Py_DECREF(v);
    return rc;
}

/* An exact dict attribute (a new reference). */
static PyObject *
dict_attr(PyObject *obj, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v != NULL && !PyDict_CheckExact(v)) {
        Py_DECREF(v);
        type_error();
        return NULL;
    }
    return v;
}

/* A field set to a new value (stolen; NULL: the error its making raised). */
static int
set_field(PyObject **field, PyObject *value)
{
    if (value == NULL)
        return -1;
    Py_XSETREF(*field, value);
    return 0;
}



static const Config *
config_of(PyObject *cfg)
{
    Config c = {.cfg = cfg};
    PyObject *weights;
    if (cfg == CONFIG.cfg)
        return &CONFIG;
    if (number_attr(cfg, A_short_hl, &c.short_hl) < 0 ||
        number_attr(cfg, A_long_hl, &c.long_hl) < 0 ||
        number_attr(cfg, A_short_ehl, &c.short_ehl) < 0 ||
        number_attr(cfg, A_long_ehl, &c.long_ehl) < 0 ||
        number_attr(cfg, A_short_weight, &c.short_weight) < 0 ||
        number_attr(cfg, A_drift_short_weight, &c.drift_short_weight) < 0 ||
        number_attr(cfg, A_settle, &c.settle) < 0 ||
        number_attr(cfg, A_other_strength, &c.other_strength) < 0 ||
        number_attr(cfg, A_prior_strength, &c.prior_strength) < 0 ||
        number_attr(cfg, A_other_spread, &c.other_spread) < 0 ||
        number_attr(cfg, A_pop_cold, &c.pop_cold_events) < 0 ||
        number_attr(cfg, A_pop_mix, &c.pop_mix_memory) < 0 ||
        number_attr(cfg, A_pop_smoothing, &c.pop_smoothing) < 0 ||
        int_attr(cfg, A_pop_cap, &c.pop_cap) < 0 || int_attr(cfg, A_max_categories, &c.cap) < 0 ||
        (weights = dict_attr(cfg, A_weights)) == NULL)
        return NULL;
    c.weights = weights;
    Py_INCREF(cfg);
    Py_XDECREF(CONFIG.cfg);
    Py_XDECREF(CONFIG.weights);
    CONFIG = c;
    return &CONFIG;
}

/* UserInterest._exponents: log2 of the stored weight, per horizon, of the k-th event at ts. */
static void
exponents(const Config *c, double ts, double r, Py_ssize_t k, Py_ssize_t nr, double *e_short,
          double *e_long)
{
    double dt = ts - r, dk = (double)(k - nr);
    *e_short = dt / c->short_hl;
    *e_long = dt / c->long_hl;
    if (c->short_ehl > 0)
        *e_short += dk / c->short_ehl;
    if (c->long_ehl > 0)
        *e_long += dk / c->long_ehl;
}

/* UserInterest.short_weight. */
static double
short_weight(const Config *c, Py_ssize_t since)
{
    if (since < 0 || (double)since >= c->settle)
        return c->short_weight;
    return c->drift_short_weight + (c->short_weight - c->drift_short_weight) * ((double)since / c->settle);
}

/* Every entry an exact str with an exact float (so nothing fails half-way through). */
static int
all_checked(PyObject *d)
{
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &name, &value))
        if (!checked(name, value))
            return -1;
    return 0;
}

/* The event's weight: InterestConfig.weight when the C code can read it (else TypeError). */
static int
event_weight(const Config *c, PyObject *x, double *w)
{
    PyObject *v = PyDict_GetItemWithError(x, K_weight), *et;
    if (v == NULL && PyErr_Occurred())
        return -1;
    if (v == NULL || v == Py_None) {
        et = PyDict_GetItemWithError(x, K_event_type);
        if (et == NULL && PyErr_Occurred())
            return -1;
        if (et == NULL)
            et = K_view;
        if (!PyUnicode_CheckExact(et) || (v = PyDict_GetItemWithError(c->weights, et)) == NULL)
            return PyErr_Occurred() ? -1 : type_error() - 1; /* not named: canonical names */
    }
    if (PyFloat_CheckExact(v))
        *w = PyFloat_AS_DOUBLE(v);
    else if (PyLong_CheckExact(v))
        return (*w = PyLong_AsDouble(v)) == -1.0 && PyErr_Occurred() ? -1 : 0;
    else
        return type_error() - 1;
    return 0;
}

/* The own distribution (UserInterest._predict_own, n > 0) with the horizons' scales. */
static PyObject *
own_distribution(const Config *c, PyObject *short_, PyObject *long_, double short_res,
                 double long_res, Py_ssize_t since, double scale_short, double scale_long)
{
    HorizonParts h = {short_, long_, short_weight(c, since), short_res, long_res,
                      c->other_strength * scale_short, c->other_strength * scale_long};
    return mix_horizons_of(&h);
}

/* What both learners read before anything changes: the config of obj (its _cfg), the event's
 * categories (n > 0), weight and time (x["ts"], else obj's _t when set, else 0.0), and _t. */
typedef struct {
    const Config *c;
    PyObject **items;
    Py_ssize_t n_cats;
    double w, ts, t;
    int has_t;
} Event;

static int
read_event(PyObject *cfg_obj, int has_t, double t, PyObject *x, Event *e)
{
    PyObject *cats, *v;
    e->has_t = has_t, e->t = t;
    if (!PyDict_CheckExact(x) || cfg_obj == NULL)
        return type_error() - 1;
    if ((e->c = config_of(cfg_obj)) == NULL)
        return -1;
    if ((cats = PyDict_GetItemWithError(x, K_categories)) == NULL)
        return PyErr_Occurred() ? -1 : type_error() - 1; /* the Python KeyError */
    if (category_items(cats, &e->items, &e->n_cats) < 0 || event_weight(e->c, x, &e->w) < 0)
        return -1;
    if (e->n_cats == 0)
        return type_error() - 1;
    v = PyDict_GetItemWithError(x, K_ts);
    if (v == NULL && PyErr_Occurred())
        return -1;
    if (v == NULL)
        e->ts = e->has_t ? e->t : 0.0;
    else if (PyFloat_CheckExact(v))
        e->ts = PyFloat_AS_DOUBLE(v);
    else
        return type_error() - 1;
    return 0;
}


/* SurpriseDrift.update(s), on its five numbers. */
typedef struct {
    double count, mean, sum_inc, min_inc, alpha, delta, min_inst, threshold;
    int detected;
} Drift;

static int
drift_read(const DriftFields *d, Drift *out)
{
    out->count = d->count, out->mean = d->mean, out->sum_inc = d->sum_increase;
    out->min_inc = d->min_increase, out->detected = d->detected;
    if (number_of(d->alpha, &out->alpha) < 0 || number_of(d->delta, &out->delta) < 0 ||
        number_of(d->min_instances, &out->min_inst) < 0 ||
        number_of(d->threshold, &out->threshold) < 0)
        return -1;
    return 0;
}

static void
drift_update(Drift *d, double s)
{
    if (d->detected) {
        d->detected = 0;
        d->count = d->mean = d->sum_inc = 0.0;
        d->min_inc = Py_HUGE_VAL;
    }
    d->count = d->count + 1.0;
    d->mean = d->mean + (1.0 / d->count) * (s - d->mean);
    d->sum_inc = d->alpha * d->sum_inc + s - d->mean - d->delta;
    if (d->sum_inc < d->min_inc)
        d->min_inc = d->sum_inc;
    if (d->count >= d->min_inst)
        d->detected = d->sum_inc - d->min_inc > d->threshold;
}

static void
drift_write(DriftFields *f, const Drift *d)
{
    f->count = d->count, f->mean = d->mean, f->sum_increase = d->sum_inc;
    f->min_increase = d->min_inc, f->detected = d->detected;
}

/* learn_event(user, x): the user's state and caches changed as user.py's definition changes
 * them, or, for anything it does not take, TypeError before anything has changed. */
static PyObject *
learn_event(PyObject *self, PyObject *args)
{
    PyObject *u, *x, **items, *short_, *long_, *before = NULL, *after = NULL, *result = NULL;
    InterestFields *f;
    DriftFields *df;
    Drift drift;
    const Config *c;
    Event e;
    Py_ssize_t n_cats, n, nr, since;
    double t, r, ts, w, short_res, long_res, s = 0.0, moved = 1.0, sc_s, sc_l, e_s, e_l;
    int has_t, has_r;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO", &u, &x))
        return NULL;
    /* -- read and check everything: nothing changes before this part is through -- */
    if ((f = interest_fields(u, &df)) == NULL ||
        read_event(f->cfg, !(f->none & U_T), f->t, x, &e) < 0 ||
        drift_read(df, &drift) < 0)
        return NULL;
    c = e.c, items = e.items, n_cats = e.n_cats, w = e.w, ts = e.ts, t = e.t, has_t = e.has_t;
    r = f->r, has_r = !(f->none & U_R), n = f->n, nr = f->nr, since = f->since_drift;
    short_res = f->short_res, long_res = f->long_res, short_ = f->short_, long_ = f->long_;
    if (has_t != has_r || short_ == NULL || !PyDict_CheckExact(short_) || long_ == NULL ||
        !PyDict_CheckExact(long_) || f->own == NULL)
        return type_error(), NULL;
    Py_INCREF(short_); /* held: the fields may be set to others while they are changed */
    Py_INCREF(long_);
    if (all_checked(short_) < 0 || all_checked(long_) < 0 ||
        add_mass_check(short_, items, n_cats, c->cap) < 0 ||
        add_mass_check(long_, items, n_cats, c->cap) < 0)
        goto done;
    if (n > 0) { /* the distribution before the event: cached, else as own_distribution() */
        if (f->own == Py_None) {
            exponents(c, t, r, n - 1, nr, &e_s, &e_l);
            before = own_distribution(c, short_, long_, short_res, long_res, since, pow(2.0, e_s),
                                      pow(2.0, e_l));
            if (before == NULL)
                goto done;
        }
        else if (!PyDict_CheckExact(f->own) || all_checked(f->own) < 0) {
            if (!PyErr_Occurred())
                type_error();
            goto done;
        }
        else {
            before = f->own;
            Py_INCREF(before);
        }
        if (mean_surprise_of(before, items, n_cats, c->other_spread, &s) < 0)
            goto done;
    }
    /* -- learn (UserInterest._learn) -- */
    if (!has_r) {
        t = r = ts;
        f->none &= ~(uint32_t)(U_T | U_R);
    }
    else if (ts > t)
        t = ts;
    exponents(c, ts, r, n, nr, &e_s, &e_l);
    if ((e_s > e_l ? e_s : e_l) > 30.0) { /* masses.REBASE_EXPONENT */
        double f_s = pow(0.5, e_s), f_l = pow(0.5, e_l);
        PyObject *name, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(short_, &pos, &name, &value))
            if (set_float(short_, name, PyFloat_AS_DOUBLE(value) * f_s) < 0)
                goto done;
        pos = 0;
        while (PyDict_Next(long_, &pos, &name, &value))
            if (set_float(long_, name, PyFloat_AS_DOUBLE(value) * f_l) < 0)
                goto done;
        short_res *= f_s;
        long_res *= f_l;
        r = ts;
        nr = n;
        e_s = e_l = 0.0;
    }
    sc_s = pow(2.0, e_s);
    sc_l = pow(2.0, e_l);
    if (add_mass_of(short_, &short_res, items, n_cats, w * sc_s, c->cap) < 0 ||
        add_mass_of(long_, &long_res, items, n_cats, w * sc_l, c->cap) < 0)
        goto done;
    n += 1;
    if (n > 1) {
        drift_update(&drift, s);
        drift_write(df, &drift);
    }
    if (drift.detected)
        since = 0;
    else if (since >= 0)
        since += 1;
    if (ts != t) /* not the latest event: the scales at the latest (UserInterest._alphas) */
        exponents(c, t, r, n - 1, nr, &e_s, &e_l), sc_s = pow(2.0, e_s), sc_l = pow(2.0, e_l);
    f->t = t, f->r = r, f->nr = nr, f->n = n, f->short_res = short_res, f->long_res = long_res;
    f->since_drift = since, f->drift_now = drift.detected;
    if (set_field(&f->scales, Py_BuildValue("(dd)", sc_s, sc_l)) < 0)
        goto done;
    Py_INCREF(Py_None);
    Py_XSETREF(f->own_top, Py_None);
    /* -- the distribution after it, cached (own_distribution), and how far it moved -- */
    after = own_distribution(c, short_, long_, short_res, long_res, since, sc_s, sc_l);
    if (after == NULL)
        goto done;
    Py_INCREF(after);
    Py_XSETREF(f->own, after);
    if (before != NULL && total_variation_of(before, after, &moved) < 0)
        goto done;
    result = Py_BuildValue("(Od)", after, moved);
done:
    Py_DECREF(short_);
    Py_DECREF(long_);
    Py_XDECREF(before);
    Py_XDECREF(after);
    return result;
}

/* ---- a snapshot's numbers of an estimator: user.py's interest_tops --------------------- */

/* The horizons as UserInterest.horizon_parts gives them (pseudo-counts toward a prior, or as
 * _other), with the scales at the latest event (its _scales, as _alphas caches them). */
static void
parts_of(PyObject *short_, PyObject *long_, double ws, double short_res, double long_res,
         double a, const double *scales, HorizonParts *h)
{
    HorizonParts parts = {short_, long_, ws, short_res, long_res, a * scales[0], a * scales[1]};
    *h = parts;
}

/* The scales at the latest event: the cached ones, else computed and cached (_alphas). */
static int
latest_scales(InterestFields *f, const Config *c, double *scales)
{
    double e_s, e_l;
    if (f->scales == NULL)
        return type_error() - 1;
    if (f->scales != Py_None) {
        if (!PyTuple_CheckExact(f->scales) || PyTuple_GET_SIZE(f->scales) != 2 ||
            float_of(PyTuple_GET_ITEM(f->scales, 0), &scales[0]) < 0 ||
            float_of(PyTuple_GET_ITEM(f->scales, 1), &scales[1]) < 0)
            return PyErr_Occurred() ? -1 : type_error() - 1;
        return 0;
    }
    if (f->none & U_R) /* none with events: the Python definition reads it as it is */
        return type_error() - 1;
    exponents(c, f->none & U_T ? 0.0 : f->t, f->r, f->n - 1, f->nr, &e_s, &e_l);
    scales[0] = pow(2.0, e_s);
    scales[1] = pow(2.0, e_l);
    return set_field(&f->scales, Py_BuildValue("(dd)", scales[0], scales[1]));
}

/* interest_tops(user, k, prior, ranked): UserInterest.snapshot_tops of a user with events,
 * its caches (_scales, _own, _own_top) set as the Python definition sets them. */
static PyObject *
interest_tops(PyObject *self, PyObject *args)
{
    PyObject *u, *prior, *ranked, *own, *tops, *own_top;
    InterestFields *f = NULL;
    DriftFields *df;
    const Config *c;
    HorizonParts parts, smoothing;
    Py_ssize_t k, n, since;
    double short_res, long_res, ws, scales[2];
    (void)self;
    if (!PyArg_ParseTuple(args, "OnOO", &u, &k, &prior, &ranked))
        return NULL;
    if ((f = interest_fields(u, &df)) == NULL || f->cfg == NULL ||
        (prior != Py_None && !PyDict_CheckExact(prior)))
        return PyErr_Occurred() ? NULL : (type_error(), NULL);
    if ((c = config_of(f->cfg)) == NULL)
        return NULL;
    n = f->n, since = f->since_drift, short_res = f->short_res, long_res = f->long_res;
    if (n == 0 || f->short_ == NULL || !PyDict_CheckExact(f->short_) || f->long_ == NULL ||
        !PyDict_CheckExact(f->long_) || f->own == NULL)
        return type_error(), NULL;
    if (latest_scales(f, c, scales) < 0)
        return NULL;
    ws = short_weight(c, since);
    parts_of(f->short_, f->long_, ws, short_res, long_res, c->other_strength, scales, &parts);
    parts_of(f->short_, f->long_, ws, short_res, long_res, c->prior_strength, scales, &smoothing);
    if (f->own == Py_None) { /* own_distribution(), cached */
        if ((own = mix_horizons_of(&parts)) == NULL)
            return NULL;
        Py_XSETREF(f->own, own);
    }
    else if (!PyDict_CheckExact(f->own))
        return type_error(), NULL;
    own = f->own;
    Py_INCREF(own); /* held: building the tops may not free it */
    Py_INCREF(f->short_);
    Py_INCREF(f->long_);
    tops = snapshot_tops_of(own, &parts, &smoothing, prior, ranked, k);
    Py_DECREF(parts.short_);
    Py_DECREF(parts.long_);
    Py_DECREF(own);
    if (tops == NULL)
        return NULL;
    own_top = Py_BuildValue("(nO)", k, PyTuple_GET_ITEM(tops, 0));
    if (set_field(&f->own_top, own_top) < 0) {
        Py_DECREF(tops);
        return NULL;
    }
    return tops;
}

/* ---- one event learned by the population: population.py's learn_population ------------- */

/* A DecayedCounts' state, read and checked before anything changes. */
typedef struct {
    CountsFields *obj;
    PyObject *masses; /* a new reference */
    double half_life, residual, ref, total;
    int has_ref;
} Counts;

static int
counts_read(PyObject *obj, Counts *c)
{
    CountsFields *f = (CountsFields *)obj;
    c->masses = NULL;
    if (obj == NULL || !PyObject_TypeCheck(obj, &countsType) ||
        (f->set & C_NUMBERS) != C_NUMBERS || f->masses == NULL || !PyDict_CheckExact(f->masses))
        return type_error() - 1;
    if (number_of(f->half_life, &c->half_life) < 0)
        return -1;
    c->obj = f;
    c->masses = f->masses;
    Py_INCREF(c->masses);
    c->residual = f->residual, c->total = f->total;
    c->ref = f->ref, c->has_ref = !(f->none & C_REF);
    return 0;
}

/* Every mass of c a float if counts_add will rebase them all at time ts (else only the
 * event's categories are read, and add_mass_check has checked those). */
static int
counts_rebase_check(const Counts *c, double ts)
{
    if (c->has_ref && (ts - c->ref) / c->half_life > 30.0) /* masses.REBASE_EXPONENT */
        return all_checked(c->masses);
    return 0;
}

/* DecayedCounts.decay(now). */
static double
counts_decay(const Counts *c, int has_now, double now)
{
    if (!has_now || !c->has_ref)
        return 1.0;
    return pow(2.0, -(now - c->ref) / c->half_life);
}

/* The log of DecayedCounts.log_loss's terms, summed as its loop does; -1 (TypeError) where
 * Python's math.log would refuse one, so that the Python definition raises its own error. */
static int
counts_log_loss(const Counts *c, PyObject **items, Py_ssize_t n, int has_now, double now,
                double smoothing, double *out)
{
    double d = counts_decay(c, has_now, now), loss = 0.0, x, m;
    double seen = c->total * d + smoothing * (double)PyDict_GET_SIZE(c->masses);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(c->masses, items[i]);
        if (v == NULL && PyErr_Occurred())
            return -1;
        if (v != NULL) {
            m = PyFloat_AS_DOUBLE(v); /* a float: add_mass_check read the event's entries */
            if (seen == 0.0)          /* Python's ZeroDivisionError */
                return type_error() - 1;
            x = (m * d + smoothing) / seen;
        }
        else {
            if (seen + smoothing == 0.0)
                return type_error() - 1;
            x = smoothing / (seen + smoothing);
        }
        if (!(x > 0.0)) /* math.log's domain error, or a NaN */
            return type_error() - 1;
        loss -= log(x);
    }
    *out = loss / (double)n;
    return 0;
}

/* DecayedCounts.add on checked counts (add_mass_check); writes its attributes back. */
static int
counts_add(Counts *c, PyObject **items, Py_ssize_t n, double w, double ts, Py_ssize_t cap)
{
    double exponent, before;
    if (!c->has_ref) {
        c->ref = ts;
        c->has_ref = 1;
    }
    exponent = (ts - c->ref) / c->half_life;
    if (exponent > 30.0) { /* masses.REBASE_EXPONENT */
        double factor = pow(0.5, exponent);
        PyObject *name, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(c->masses, &pos, &name, &value))
            if (set_float(c->masses, name, PyFloat_AS_DOUBLE(value) * factor) < 0)
                return -1;
        c->residual = c->residual * factor;
        c->total *= factor;
        c->ref = ts;
        exponent = 0.0;
    }
    w *= pow(2.0, exponent);
    c->total += w;
    before = c->residual;
    if (add_mass_of(c->masses, &c->residual, items, n, w, cap) < 0)
        return -1;
    c->obj->ref = c->ref, c->obj->total = c->total, c->obj->residual = c->residual;
    c->obj->none &= ~(uint32_t)C_REF;
    if (c->residual != before) { /* a category was evicted: dense()'s positions are stale */
        Py_INCREF(Py_None);
        Py_XSETREF(c->obj->dense_index, Py_None);
    }
    return 0;
}

/* float(x) into a list's item (what set_float does in a dict). */
static int
set_float_item(PyObject *list, Py_ssize_t i, double x)
{
    PyObject *v = PyFloat_FromDouble(x);
    return v == NULL ? -1 : PyList_SetItem(list, i, v); /* steals v */
}

/* learn_population(pop, x, user_events): the population's state changed as population.py's
 * definition changes it, or, for anything it does not take, TypeError before any change. */
static PyObject *
learn_population(PyObject *self, PyObject *args)
{
    PyObject *obj, *x, *user_events, **items, *scores;
    PyObject *result = NULL;
    PopulationFields *pop;
    const Config *c;
    Event e;
    Counts long_ = {NULL, NULL, 0, 0, 0, 0, 0}, short_ = {NULL, NULL, 0, 0, 0, 0, 0};
    Py_ssize_t n_cats, n, k = 0;
    double t, ts, w, score_long = 0.0, score_short = 0.0, loss_long, loss_short;
    int has_t, two, cold;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOO", &obj, &x, &user_events))
        return NULL;
    pop = (PopulationFields *)obj;
    if ((user_events != Py_None && !PyLong_CheckExact(user_events)) ||
        !PyObject_TypeCheck(obj, &populationType) || (pop->set & P_NUMBERS) != P_NUMBERS)
        return type_error(), NULL;
    if (read_event(pop->cfg, !(pop->none & P_T), pop->t, x, &e) < 0)
        return NULL;
    c = e.c, items = e.items, n_cats = e.n_cats, w = e.w, ts = e.ts, t = e.t, has_t = e.has_t;
    if (user_events != Py_None && ((k = PyLong_AsSsize_t(user_events)) == -1 && PyErr_Occurred()))
        return NULL;
    cold = user_events != Py_None && (double)k < c->pop_cold_events;
    n = pop->n, two = pop->two;
    if (counts_read(pop->long_, &long_) < 0 || counts_read(pop->short_, &short_) < 0 ||
        add_mass_check(long_.masses, items, n_cats, c->pop_cap) < 0 ||
        counts_rebase_check(&long_, ts) < 0 ||
        (two && (add_mass_check(short_.masses, items, n_cats, c->pop_cap) < 0 ||
                 counts_rebase_check(&short_, ts) < 0)))
        goto done;
    if (two && cold && n) { /* PopulationInterest._score, at the time before this event */
        scores = pop->scores;
        if (scores == NULL || !PyList_CheckExact(scores) || PyList_GET_SIZE(scores) != 2 ||
            !PyFloat_CheckExact(PyList_GET_ITEM(scores, 0)) ||
            !PyFloat_CheckExact(PyList_GET_ITEM(scores, 1))) {
            type_error();
            goto done;
        }
        double keep = 1.0 - 1.0 / c->pop_mix_memory;
        if (counts_log_loss(&long_, items, n_cats, has_t, t, c->pop_smoothing, &loss_long) < 0 ||
            counts_log_loss(&short_, items, n_cats, has_t, t, c->pop_smoothing, &loss_short) < 0)
            goto done;
        score_long = keep * PyFloat_AS_DOUBLE(PyList_GET_ITEM(scores, 0)) + loss_long;
        score_short = keep * PyFloat_AS_DOUBLE(PyList_GET_ITEM(scores, 1)) + loss_short;
        if (set_float_item(scores, 0, score_long) < 0 || set_float_item(scores, 1, score_short) < 0)
            goto done;
    }
    if (!has_t || ts > t) {
        pop->t = ts;
        pop->none &= ~(uint32_t)P_T;
    }
    pop->n = n + 1;
    if (counts_add(&long_, items, n_cats, w, ts, c->pop_cap) < 0 ||
        (two && counts_add(&short_, items, n_cats, w, ts, c->pop_cap) < 0))
        goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(long_.masses);
    Py_XDECREF(short_.masses);
    return result;
}

/* ---- an estimator rebuilt from its compact state: user.py's restore_interest ------------ */

/* dict(zip(keys, values, strict=True)) of two exact lists of the same length, the keys exact
 * str (hashing them runs no Python code that could change the lists). */
static PyObject *
zipped_dict(PyObject *keys, PyObject *values)
{
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *d;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i)))
            return type_error(), NULL;
    if ((d = PyDict_New()) == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyDict_SetItem(d, PyList_GET_ITEM(keys, i), PyList_GET_ITEM(values, i)) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    return d;
}

/* A flag the C code reads without running Python code: a bool, float or int. */
static int
plain_truth(PyObject *x)
{
    if (!PyBool_Check(x) && !PyFloat_CheckExact(x) && !PyLong_CheckExact(x))
        return type_error() - 1;
    return PyObject_IsTrue(x);
}

static PyObject *ONE; /* SurpriseDrift's default alpha, shared as Python's constant is */

static PyObject *
new_instance(PyObject *cls)
{
    PyObject *empty = PyTuple_New(0), *obj;
    if (empty == NULL)
        return NULL;
    obj = ((PyTypeObject *)cls)->tp_new((PyTypeObject *)cls, empty, NULL);
    Py_DECREF(empty);
    return obj;
}

/* Each object field set to its value (new references), in the order of their struct. */
static void
fill_objects(PyObject **f, PyObject *const *values, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(f[i], values[i]);
    }
}

/* Each number field set from its value as its setter does (TypeError for a value it does not
 * hold, and the Python definition raises it). */
static int
fill_numbers(PyObject *obj, const NumberField *fields, PyObject *const *values, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (number_set(obj, values[i], (void *)&fields[i]) < 0)
            return -1;
    return 0;
}

/* restore_interest(cls, drift_cls, state, config, cfg): the estimator user.py's definition
 * builds, field for field; TypeError (nothing built) for a state it does not read or classes
 * without the C layout of their fields. */
static PyObject *
restore_interest(PyObject *self, PyObject *args)
{
    PyObject *cls, *drift_cls, *state, *config, *cfg, *sk, *sm, *lk, *lm, **f, **d;
    PyObject *u = NULL, *drift = NULL, *short_ = NULL, *long_ = NULL, *result = NULL;
    PyObject *min_instances = NULL, *delta = NULL, *threshold = NULL, *own = NULL, *dt = NULL;
    int detected, now;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOO", &cls, &drift_cls, &state, &config, &cfg))
        return NULL;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &interestType) ||
        !PyType_Check(drift_cls) || !PyType_IsSubtype((PyTypeObject *)drift_cls, &driftType) ||
        !PyList_CheckExact(state) || PyList_GET_SIZE(state) != 13)
        return type_error(), NULL;
    /* Tuples of their own: reading the config may run Python code, which must not free what
     * is still to be read. */
    if ((own = PyList_AsTuple(state)) == NULL)
        return NULL;
    f = &PyTuple_GET_ITEM(own, 0);
    sk = f[4], sm = f[5], lk = f[6], lm = f[7];
    if (!PyList_CheckExact(sk) || !PyList_CheckExact(sm) || !PyList_CheckExact(lk) ||
        !PyList_CheckExact(lm) || PyList_GET_SIZE(sk) != PyList_GET_SIZE(sm) ||
        PyList_GET_SIZE(lk) != PyList_GET_SIZE(lm) || !PyList_CheckExact(f[10]) ||
        PyList_GET_SIZE(f[10]) != 5) {
        type_error();
        goto done;
    }
    if ((dt = PyList_AsTuple(f[10])) == NULL)
        goto done;
    d = &PyTuple_GET_ITEM(dt, 0);
    if ((detected = plain_truth(d[4])) < 0 || (now = plain_truth(f[12])) < 0)
        goto done;
    if ((short_ = zipped_dict(sk, sm)) == NULL || (long_ = zipped_dict(lk, lm)) == NULL ||
        (min_instances = PyObject_GetAttr(cfg, A_drift_min_instances)) == NULL ||
        (delta = PyObject_GetAttr(cfg, A_drift_delta)) == NULL ||
        (threshold = PyObject_GetAttr(cfg, A_drift_threshold)) == NULL ||
        (drift = new_instance(drift_cls)) == NULL || (u = new_instance(cls)) == NULL)
        goto done;
    {
        PyObject *dobj[DRIFT_OBJECTS] = {min_instances, delta, threshold, ONE};
        PyObject *dnum[DRIFT_NUMBERS] = {d[0], d[1], d[2], d[3], detected ? Py_True : Py_False};
        PyObject *uobj[INTEREST_OBJECTS] = {config, cfg, Py_None, Py_None, Py_None,
                                            short_, long_, drift};
        /* _t, _r, _short_res, _long_res, _nr, _n, _since_drift, _drift_now */
        PyObject *unum[INTEREST_NUMBERS] = {f[0], f[1], f[8], f[9], f[2], f[3], f[11],
                                            now ? Py_True : Py_False};
        fill_objects(&((DriftFields *)drift)->min_instances, dobj, DRIFT_OBJECTS);
        fill_objects(&((InterestFields *)u)->config, uobj, INTEREST_OBJECTS);
        if (fill_numbers(drift, drift_numbers, dnum, DRIFT_NUMBERS) < 0 ||
            fill_numbers(u, interest_numbers, unum, INTEREST_NUMBERS) < 0)
            goto done;
    }
    result = u;
    u = NULL;
done:
    Py_XDECREF(u);
    Py_XDECREF(drift);
    Py_XDECREF(short_);
    Py_XDECREF(long_);
    Py_XDECREF(min_instances);
    Py_XDECREF(delta);
    Py_XDECREF(threshold);
    Py_XDECREF(dt);
    Py_XDECREF(own);
    return result;
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS, "masses.top_k, in C."},
    {"top_smoothed", top_smoothed, METH_VARARGS, "masses.top_smoothed, in C."},
    {"rank_smoothed", rank_smoothed, METH_VARARGS, "masses.rank_smoothed, in C."},
    {"fused_rank", fused_rank, METH_VARARGS, "masses.fused_rank, in C."},
    {"mix_horizons", mix_horizons, METH_VARARGS, "masses.mix_horizons, in C."},
    {"smoothed_tracked", smoothed_tracked, METH_VARARGS, "masses.smoothed_tracked, in C."},
    {"total_variation", total_variation, METH_VARARGS, "masses.total_variation, in C."},
    {"entropy", entropy, METH_VARARGS, "masses.entropy, in C."},
    {"learn_event", learn_event, METH_VARARGS, "user.learn_event, in C."},
    {"learn_population", learn_population, METH_VARARGS, "population.learn_population, in C."},
    {"snapshot_tops", snapshot_tops, METH_VARARGS, "masses.snapshot_tops, in C."},
    {"interest_tops", interest_tops, METH_VARARGS, "user.interest_tops, in C."},
    {"add_mass", add_mass, METH_VARARGS, "masses.add_mass, in C."},
    {"mean_surprise", mean_surprise, METH_VARARGS, "masses.mean_surprise, in C."},
    {"restore_interest", restore_interest, METH_VARARGS, "user.restore_interest, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_masses", "masses.py's arithmetic, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static struct {
    PyObject **name;
    const char *text;
} NAMES[] = {
    {&A_short_hl, "short_half_life"},
    {&A_long_hl, "long_half_life"},
    {&A_short_ehl, "short_event_half_life"},
    {&A_long_ehl, "long_event_half_life"},
    {&A_short_weight, "short_weight"},
    {&A_drift_short_weight, "drift_short_weight"},
    {&A_settle, "drift_settle_events"},
    {&A_other_strength, "other_strength"},
    {&A_prior_strength, "prior_strength"},
    {&A_other_spread, "other_spread"},
    {&A_max_categories, "max_categories"},
    {&A_weights, "event_weights"},
    {&A_pop_cold, "population_cold_events"},
    {&A_pop_cap, "population_max_categories"},
    {&A_pop_mix, "population_mix_memory"},
    {&A_pop_smoothing, "population_smoothing"},
    {&A_drift_min_instances, "drift_min_instances"},
    {&A_drift_delta, "drift_delta"},
    {&A_drift_threshold, "drift_threshold"},
    {&K_ts, "ts"},
    {&K_weight, "weight"},
    {&K_event_type, "event_type"},
    {&K_categories, "categories"},
    {&K_view, "view"},
};

PyMODINIT_FUNC
PyInit__masses(void)
{
    PyObject *m;
    if ((OTHER = PyUnicode_InternFromString("_other")) == NULL ||
        (ONE = PyFloat_FromDouble(1.0)) == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if ((*NAMES[i].name = PyUnicode_InternFromString(NAMES[i].text)) == NULL)
            return NULL;
    getset_of(interest_numbers, INTEREST_NUMBERS, interest_getset);
    getset_of(drift_numbers, DRIFT_NUMBERS, drift_getset);
    getset_of(population_numbers, POPULATION_NUMBERS, population_getset);
    getset_of(counts_numbers, COUNTS_NUMBERS, counts_getset);
    if (PyType_Ready(&interestType) < 0 || PyType_Ready(&driftType) < 0 ||
        PyType_Ready(&populationType) < 0 || PyType_Ready(&countsType) < 0 ||
        (m = PyModule_Create(&module)) == NULL)
        return NULL;
    Py_INCREF(&interestType);
    Py_INCREF(&driftType);
    Py_INCREF(&populationType);
    Py_INCREF(&countsType);
    if (PyModule_AddObject(m, "InterestFields", (PyObject *)&interestType) < 0 ||
        PyModule_AddObject(m, "DriftFields", (PyObject *)&driftType) < 0 ||
        PyModule_AddObject(m, "PopulationFields", (PyObject *)&populationType) < 0 ||
        PyModule_AddObject(m, "CountsFields", (PyObject *)&countsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
