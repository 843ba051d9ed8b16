/* Compiled fast paths of portico's HTTP/1 codec. Optional: http1.py falls back to its own
   Python when this is not built (setup.py) or PORTICO_PURE_PYTHON is set.

   Why. A response head goes through about twenty bytes operations in the pure-Python fast
   path (portico/protocols/http1.py, _fast_head), each allocating, and a request head
   through llhttp with a Python callback per field; at tens of thousands of requests a
   second those were the largest single Python costs on the request path. Each function
   here walks a head once.

   Contract. Each function answers either "the common case, and here is exactly what the
   path it skips would give" or None ("not mine"): response_head() against the careful
   response parser, request_head() against llhttp and RequestParser's callbacks. Anything
   unusual (interim statuses, odd versions, bare LF or CR, obs-fold, control bytes, a line
   without a colon or with whitespace before it, framing fields on a request, any limit
   reached) gives None, and the other path decides it and words the error.
   tests/protocols/test_protocols_fast_head.py and test_protocols_fast_request.py hold both
   to the same results. Nothing here reads outside the buffer it is given or trusts a
   length it has not checked. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *version_10;   /* b"1.0" */
static PyObject *version_11;   /* b"1.1" */
static PyObject *empty_bytes;  /* b"" */
static PyObject *kinds[3];     /* 0 content-length, 1 transfer-encoding, 2 connection */

/* RFC 9110 tchar */
static unsigned char is_tchar[256];
/* bytes a field value or reason phrase may hold: HTAB, SP to ~, obs-text */
static unsigned char is_text[256];

static void
init_tables(void)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        is_tchar[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                      || (c >= 'A' && c <= 'Z') || (c != 0 && strchr(extra, c) != NULL);
        is_text[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
    }
}

/* Which framing field a name is (case-insensitive), or -1. The name holds tchars only,
   and among those "| 0x20" maps exactly the two cases of a letter to the lower one and no
   other byte onto a lowercase letter or "-": a plain compare after it is exact. */
static int
framing_kind(const unsigned char *name, Py_ssize_t len)
{
    static const struct { const char *lower; Py_ssize_t len; int kind; } fields[] = {
        {"content-length", 14, 0}, {"transfer-encoding", 17, 1}, {"connection", 10, 2},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].len != len)
            continue;
        Py_ssize_t j = 0;
        while (j < len && (name[j] | 0x20) == (unsigned char)fields[i].lower[j])
            j++;
        if (j == len)
            return fields[i].kind;
    }
    return -1;
}

static const unsigned char *
find_cr(const unsigned char *p, const unsigned char *stop)
{
    const unsigned char *cr = memchr(p, '\r', (size_t)(stop - p));
    return cr != NULL ? cr : stop;
}

/* A field line [line, line_end): "name" made of tchars, ":", then a value of text bytes.
   Sets the colon and the value without the blanks around it; 0 when the line is anything
   else (no name, no colon, whitespace before it, a control byte). */
static int
split_field(const unsigned char *line, const unsigned char *line_end,
            const unsigned char **colon_out, const unsigned char **value_out,
            const unsigned char **value_end_out)
{
    const unsigned char *colon = line;
    while (colon < line_end && is_tchar[*colon])
        colon++;
    if (colon == line || colon == line_end || *colon != ':')
        return 0;
    const unsigned char *v = colon + 1, *v_end = line_end;
    for (const unsigned char *c = v; c < v_end; c++)
        if (!is_text[*c])
            return 0;
    while (v < v_end && (*v == ' ' || *v == '\t'))
        v++;
    while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '\t'))
        v_end--;
    *colon_out = colon;
    *value_out = v;
    *value_end_out = v_end;
    return 1;
}

/* Appends (name, value) to ``fields``; the value (borrowed from the list), or NULL with an
   exception set. */
static PyObject *
append_field(PyObject *fields, const unsigned char *name, Py_ssize_t name_len,
             const unsigned char *value, Py_ssize_t value_len)
{
    PyObject *field = PyTuple_New(2);
    if (field == NULL)
        return NULL;
    PyObject *name_bytes = PyBytes_FromStringAndSize((const char *)name, name_len);
    PyObject *value_bytes = PyBytes_FromStringAndSize((const char *)value, value_len);
    if (name_bytes == NULL || value_bytes == NULL) {
        Py_XDECREF(name_bytes);
        Py_XDECREF(value_bytes);
        Py_DECREF(field);
        return NULL;
    }
    PyTuple_SET_ITEM(field, 0, name_bytes);
    PyTuple_SET_ITEM(field, 1, value_bytes);
    int failed = PyList_Append(fields, field);
    Py_DECREF(field);   /* the list holds it, and so the value */
    return failed ? NULL : value_bytes;
}

/* response_head(data, pos, end, max_fields) -> (status, reason, version, headers, framing,
   names_key) | None, for the head in data[pos:end], blank line included (see above). */
static PyObject *
response_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "response_head(data, pos, end, max_fields)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t end = PyLong_AsSsize_t(args[2]);
    Py_ssize_t max_fields = PyLong_AsSsize_t(args[3]);
    if ((pos == -1 || end == -1 || max_fields == -1) && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;

    PyObject *result = NULL, *headers = NULL, *framing = NULL, *reason = NULL, *key = NULL;
    const unsigned char *data = view.buf;
    if (pos < 0 || end > view.len || end - pos < 4 + 12
            || memcmp(data + end - 4, "\r\n\r\n", 4) != 0)
        goto none;
    const unsigned char *p = data + pos;
    const unsigned char *stop = data + end - 4;   /* the head, without the blank line */

    /* "HTTP/1.x NNN" with NNN from 200 to 999, then nothing or " " and the reason */
    const unsigned char *line_end = find_cr(p, stop);
    Py_ssize_t line_len = line_end - p;
    if (line_len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1')
            || p[8] != ' ' || p[9] < '2' || p[9] > '9' || p[10] < '0' || p[10] > '9'
            || p[11] < '0' || p[11] > '9' || (line_len > 12 && p[12] != ' '))
        goto none;
    long status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    PyObject *version = p[7] == '1' ? version_11 : version_10;
    const unsigned char *r = p + (line_len > 13 ? 13 : line_len), *r_end = line_end;
    for (const unsigned char *c = r; c < r_end; c++)
        if (!is_text[*c])
            goto none;
    if (line_end < stop && line_end[1] != '\n')
        goto none;   /* a bare CR (line_end < stop, so line_end[1] is inside the buffer) */

    headers = PyList_New(0);
    framing = PyList_New(0);
    if (headers == NULL || framing == NULL)
        goto error;
    Py_ssize_t fields = 0, key_len = 0;
    const unsigned char *q = line_end < stop ? line_end + 2 : stop;
    while (q < stop) {
        line_end = find_cr(q, stop);
        if (line_end < stop && line_end[1] != '\n')
            goto none;
        if (++fields > max_fields)
            goto none;
        const unsigned char *colon, *v, *v_end;
        if (!split_field(q, line_end, &colon, &v, &v_end))
            goto none;
        PyObject *value = append_field(headers, q, colon - q, v, v_end - v);
        if (value == NULL)
            goto error;
        key_len += (colon - q) + 1;
        int kind = framing_kind(q, colon - q);
        if (kind >= 0) {
            PyObject *item = PyTuple_Pack(2, kinds[kind], value);
            if (item == NULL)
                goto error;
            int failed = PyList_Append(framing, item);
            Py_DECREF(item);
            if (failed)
                goto error;
        }
        q = line_end + 2;
    }

    /* the names joined with "\n": what the head builder looks its per-name decisions up by */
    if (fields == 0) {
        key = Py_NewRef(empty_bytes);
    }
    else {
        key = PyBytes_FromStringAndSize(NULL, key_len - 1);
        if (key == NULL)
            goto error;
        char *out = PyBytes_AS_STRING(key);
        for (Py_ssize_t i = 0; i < fields; i++) {
            PyObject *name = PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 0);
            if (i)
                *out++ = '\n';
            memcpy(out, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
            out += PyBytes_GET_SIZE(name);
        }
    }
    reason = r < r_end ? PyBytes_FromStringAndSize((const char *)r, r_end - r)
                          : Py_NewRef(empty_bytes);
    if (reason == NULL || (result = PyTuple_New(6)) == NULL) {
        Py_XDECREF(reason);
        goto error;
    }
    PyTuple_SET_ITEM(result, 0, PyLong_FromLong(status));
    PyTuple_SET_ITEM(result, 1, reason);
    PyTuple_SET_ITEM(result, 2, Py_NewRef(version));
    PyTuple_SET_ITEM(result, 3, headers);
    PyTuple_SET_ITEM(result, 4, framing);
    PyTuple_SET_ITEM(result, 5, key);
    if (PyTuple_GET_ITEM(result, 0) == NULL) {
        Py_DECREF(result);
        PyBuffer_Release(&view);
        return NULL;
    }
    PyBuffer_Release(&view);
    return result;

none:
    Py_XDECREF(headers);
    Py_XDECREF(framing);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;

error:
    Py_XDECREF(headers);
    Py_XDECREF(framing);
    Py_XDECREF(key);
    PyBuffer_Release(&view);
    return NULL;
}

/* The methods the request fast path takes (any other goes to llhttp): the same bytes objects
   every time, so later comparisons with them are cheap. */
static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                           "PATCH"};
#define METHOD_COUNT (sizeof method_names / sizeof method_names[0])
static PyObject *methods_bytes[METHOD_COUNT];

/* p[:len] equals the lowercase ASCII word ``lower`` whatever its case. Exact for any
   bytes without controls: only the two cases of a letter "| 0x20" onto that letter, and
   only "-" itself (CR aside) onto "-". */
static int
lower_equals(const unsigned char *p, Py_ssize_t len, const char *lower)
{
    Py_ssize_t n = (Py_ssize_t)strlen(lower);
    if (n != len)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != (unsigned char)lower[i])
            return 0;
    return 1;
}

/* What a request field means to the fast path. */
enum { FIELD_PLAIN, FIELD_HOST, FIELD_CONNECTION, FIELD_RARE };

static int
request_field_kind(const unsigned char *name, Py_ssize_t len)
{
    switch (len) {
    case 4:
        return lower_equals(name, len, "host") ? FIELD_HOST : FIELD_PLAIN;
    case 10:
        return lower_equals(name, len, "connection") ? FIELD_CONNECTION : FIELD_PLAIN;
    case 6:
        return lower_equals(name, len, "expect") ? FIELD_RARE : FIELD_PLAIN;
    case 7:
        return lower_equals(name, len, "upgrade") ? FIELD_RARE : FIELD_PLAIN;
    case 14:
        return lower_equals(name, len, "content-length") ? FIELD_RARE : FIELD_PLAIN;
    case 16:   /* llhttp reads it like Connection */
        return lower_equals(name, len, "proxy-connection") ? FIELD_RARE : FIELD_PLAIN;
    case 17:
        return lower_equals(name, len, "transfer-encoding") ? FIELD_RARE : FIELD_PLAIN;
    default:
        return FIELD_PLAIN;
    }
}

/* request_head(data, pos, max_line, max_field_size, max_fields) -> (end, method, target,
   version, headers, host, keep_alive) | None.

   The common request: a known method without a body (no Content-Length or
   Transfer-Encoding), an origin-form target, HTTP/1.1 with one Host or HTTP/1.0 with at
   most one, no Expect, Upgrade or Proxy-Connection, at most one Connection that says just
   "close" or "keep-alive", CRLF line ends, every limit kept. The bytes allowed in the
   target, names and values are the ones llhttp allows. Anything else, or a head not
   complete in data[pos:], gives None, and llhttp parses it (and words any error);
   tests/protocols/test_protocols_fast_request.py checks both give the same events. */
static PyObject *
request_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "request_head(data, pos, max_line, max_field_size, max_fields)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[2]);
    Py_ssize_t max_field_size = PyLong_AsSsize_t(args[3]);
    Py_ssize_t max_fields = PyLong_AsSsize_t(args[4]);
    if ((pos == -1 || max_line == -1 || max_field_size == -1 || max_fields == -1)
            && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *headers = NULL, *host = NULL, *result = NULL;
    const unsigned char *data = view.buf;
    if (pos < 0 || pos >= view.len)
        goto none;
    const unsigned char *p = data + pos, *stop = data + view.len;

    /* the request line: METHOD SP /target SP HTTP/1.x CRLF */
    const unsigned char *sp = memchr(p, ' ', (size_t)(stop - p) < 8 ? (size_t)(stop - p) : 8);
    if (sp == NULL)
        goto none;
    PyObject *method = NULL;
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        if ((size_t)(sp - p) == strlen(method_names[i])
                && memcmp(p, method_names[i], (size_t)(sp - p)) == 0) {
            method = methods_bytes[i];
            break;
        }
    }
    if (method == NULL)
        goto none;
    const unsigned char *target = sp + 1, *t = target;
    if (t >= stop || *t != '/')
        goto none;
    while (t < stop && *t >= 0x21 && *t <= 0x7e)
        t++;
    /* " HTTP/1.x\r\n" */
    if (stop - t < 11 || memcmp(t, " HTTP/1.", 8) != 0 || (t[8] != '0' && t[8] != '1')
            || t[9] != '\r' || t[10] != '\n')
        goto none;
    int http11 = t[8] == '1';
    Py_ssize_t target_len = t - target;
    if (target_len + (sp - p) + 10 > max_line)
        goto none;   /* llhttp's path answers 414 */
    const unsigned char *q = t + 11;

    headers = PyList_New(0);
    if (headers == NULL)
        goto error;
    Py_ssize_t fields = 0, hosts = 0, connections = 0;
    int keep_alive = http11;
    for (;;) {
        const unsigned char *line_end = memchr(q, '\r', (size_t)(stop - q));
        if (line_end == NULL || line_end + 1 >= stop || line_end[1] != '\n')
            goto none;   /* incomplete, or a bare CR */
        if (line_end == q)
            break;   /* the blank line */
        if (++fields > max_fields)
            goto none;
        const unsigned char *colon, *v, *v_end;
        if (!split_field(q, line_end, &colon, &v, &v_end))
            goto none;
        if ((colon - q) + (v_end - v) + 2 > max_field_size)
            goto none;   /* llhttp's path answers 431 */
        int kind = request_field_kind(q, colon - q);
        if (kind == FIELD_RARE || (kind == FIELD_HOST && ++hosts > 1))
            goto none;
        if (kind == FIELD_CONNECTION) {
            if (++connections > 1)
                goto none;
            if (lower_equals(v, v_end - v, "close"))
                keep_alive = 0;
            else if (lower_equals(v, v_end - v, "keep-alive"))
                keep_alive = 1;
            else
                goto none;
        }
        PyObject *value = append_field(headers, q, colon - q, v, v_end - v);
        if (value == NULL)
            goto error;
        if (kind == FIELD_HOST)
            host = Py_NewRef(value);
        q = line_end + 2;
    }
    if (http11 ? hosts != 1 : hosts > 1)
        goto none;   /* the careful path words the error */
    PyObject *target_bytes = PyBytes_FromStringAndSize((const char *)target, target_len);
    if (target_bytes == NULL)
        goto error;
    result = PyTuple_New(7);
    if (result == NULL) {
        Py_DECREF(target_bytes);
        goto error;
    }
    PyObject *end = PyLong_FromSsize_t(q + 2 - data);
    PyTuple_SET_ITEM(result, 0, end);
    PyTuple_SET_ITEM(result, 1, Py_NewRef(method));
    PyTuple_SET_ITEM(result, 2, target_bytes);
    PyTuple_SET_ITEM(result, 3, Py_NewRef(http11 ? version_11 : version_10));
    PyTuple_SET_ITEM(result, 4, headers);
    PyTuple_SET_ITEM(result, 5, host != NULL ? host : Py_NewRef(Py_None));
    PyTuple_SET_ITEM(result, 6, PyBool_FromLong(keep_alive));
    PyBuffer_Release(&view);
    if (end == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    return result;

none:
    Py_XDECREF(headers);
    Py_XDECREF(host);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;

error:
    Py_XDECREF(headers);
    Py_XDECREF(host);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"response_head", (PyCFunction)(void (*)(void))response_head, METH_FASTCALL,
     "response_head(data, pos, end, max_fields): the common response head in data[pos:end] "
     "as (status, reason, version, headers, framing, names_key), or None."},
    {"request_head", (PyCFunction)(void (*)(void))request_head, METH_FASTCALL,
     "request_head(data, pos, max_line, max_field_size, max_fields): the common bodiless "
     "request head at data[pos:] as (end, method, target, version, headers, host, "
     "keep_alive), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "portico.protocols._speedups",
    "Compiled fast paths of the HTTP/1 codec.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    version_10 = PyBytes_FromStringAndSize("1.0", 3);
    version_11 = PyBytes_FromStringAndSize("1.1", 3);
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    for (int i = 0; i < 3; i++)
        kinds[i] = PyLong_FromLong(i);
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        methods_bytes[i] = PyBytes_FromString(method_names[i]);
        if (methods_bytes[i] == NULL)
            return NULL;
    }
    if (version_10 == NULL || version_11 == NULL || empty_bytes == NULL
            || kinds[0] == NULL || kinds[1] == NULL || kinds[2] == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
