/* fixture.h: a tiny reader of .safetensors files (and of the small JSON documents they carry in their
 * header), enough for the reference fixtures of tests/fixtures/. Not a general-purpose parser: the
 * whole file is read into memory, tensors are returned as float32 copies (F32 only), and JSON numbers
 * are parsed with strtod. Little-endian hosts only (as the format). */
#ifndef CEBRA_TEST_FIXTURE_H
#define CEBRA_TEST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#define FX_MAX_DIMS 8

/* ---- JSON ------------------------------------------------------------------------------------ */
typedef enum { FX_JNULL, FX_JBOOL, FX_JNUMBER, FX_JSTRING, FX_JARRAY, FX_JOBJECT } fx_json_kind;

typedef struct fx_json {
    fx_json_kind kind;
    double number;           /* FX_JNUMBER, FX_JBOOL (0/1) */
    char *string;            /* FX_JSTRING (NUL-terminated, unescaped) */
    size_t count;            /* FX_JARRAY / FX_JOBJECT: number of items */
    char **keys;             /* FX_JOBJECT: keys[i] names items[i] */
    struct fx_json *items;   /* FX_JARRAY / FX_JOBJECT */
} fx_json;

/* Parses `len` bytes of JSON; NULL (and a message in *error when error != NULL) on failure. */
fx_json *fx_json_parse(const char *text, size_t len, const char **error);
void fx_json_free(fx_json *value);
/* Member `key` of an object, or NULL. */
const fx_json *fx_json_get(const fx_json *object, const char *key);

/* ---- files ----------------------------------------------------------------------------------- */
/* The whole file in a malloc'ed buffer (plus a NUL byte after it); NULL when it cannot be read. */
unsigned char *fx_read_all(const char *path, size_t *len);
/* Writes `len` bytes to `path`; 0 on success. */
int fx_write_all(const char *path, const void *data, size_t len);

/* ---- safetensors ----------------------------------------------------------------------------- */
typedef struct {
    char *name;
    char dtype[8];                 /* "F32", "I32", ... */
    int ndim;
    int64_t shape[FX_MAX_DIMS];
    size_t numel;
    size_t begin, end;             /* byte offsets into the data section */
    float *data;                   /* float32 copy (NULL unless dtype is F32) */
} fx_tensor;

typedef struct {
    unsigned char *bytes;          /* the whole file */
    size_t size;
    uint64_t header_len;           /* bytes of the JSON header (after the 8-byte length) */
    fx_json *header;
    size_t count;
    fx_tensor *tensors;            /* in header order */
} fx_file;

/* Opens a .safetensors file; NULL (with the reason printed to stderr) on failure. */
fx_file *fx_open(const char *path);
void fx_close(fx_file *file);
/* The tensor `name` (any dtype; ->data is set for F32 only), or NULL. */
const fx_tensor *fx_tensor_get(const fx_file *file, const char *name);
/* The F32 data of tensor `name`, or NULL; *numel (if not NULL) receives the element count. */
const float *fx_f32(const fx_file *file, const char *name, size_t *numel);
/* A `__metadata__` string value, or NULL. */
const char *fx_meta(const fx_file *file, const char *key);

/* Builds a safetensors file image from a header text and a data section: 8-byte length, header,
 * data. The result is malloc'ed; *len receives its size. */
unsigned char *fx_build(const char *header, const void *data, size_t data_len, size_t *len);

#endif /* CEBRA_TEST_FIXTURE_H */
