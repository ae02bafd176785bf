/* fixture.c: see fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ------------------------------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
    const char *error;
    int depth;
} jparser;

static void jskip(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int jfail(jparser *j, const char *message) {
    if (!j->error) j->error = message;
    return -1;
}

static void jclear(fx_json *v) {
    size_t i;
    if (!v) return;
    free(v->string);
    for (i = 0; i < v->count; i++) {
        if (v->keys) free(v->keys[i]);
        if (v->items) jclear(&v->items[i]);
    }
    free(v->keys);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Parses a string at j->p (which is at '"') into a malloc'ed buffer. */
static int jstring(jparser *j, char **out) {
    const char *start;
    char *buf;
    size_t n = 0;
    if (j->p >= j->end || *j->p != '"') return jfail(j, "expected a string");
    start = ++j->p;
    /* The unescaped text is never longer than the escaped one. */
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\') j->p++;
        j->p++;
    }
    if (j->p >= j->end) return jfail(j, "unterminated string");
    buf = malloc((size_t)(j->p - start) + 1);
    if (!buf) return jfail(j, "out of memory");
    j->p = start;
    while (*j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            free(buf);
            return jfail(j, "control character in a string");
        }
        if (c != '\\') {
            buf[n++] = c;
            continue;
        }
        c = *j->p++;
        switch (c) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp = 0;
            int k;
            for (k = 0; k < 4; k++) {
                char h = j->p < j->end ? *j->p++ : 0;
                cp <<= 4;
                if (h >= '0' && h <= '9') cp |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f') cp |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F') cp |= (unsigned)(h - 'A' + 10);
                else {
                    free(buf);
                    return jfail(j, "bad \\u escape");
                }
            }
            /* Surrogates are kept as-is (3 bytes each): the fixtures are ASCII. 6 escaped bytes give
               at most 3 output bytes, so the buffer is large enough. */
            put_utf8(buf, &n, cp);
            break;
        }
        default:
            free(buf);
            return jfail(j, "bad escape in a string");
        }
    }
    j->p++;
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int jvalue(jparser *j, fx_json *v);

static int jpush(jparser *j, fx_json *v, size_t *cap) {
    if (v->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        fx_json *items = realloc(v->items, ncap * sizeof *items);
        if (!items) return jfail(j, "out of memory");
        v->items = items;
        if (v->kind == FX_JOBJECT) {
            char **keys = realloc(v->keys, ncap * sizeof *keys);
            if (!keys) return jfail(j, "out of memory");
            v->keys = keys;
        }
        *cap = ncap;
    }
    memset(&v->items[v->count], 0, sizeof v->items[0]);
    if (v->kind == FX_JOBJECT) v->keys[v->count] = NULL;
    v->count++;
    return 0;
}

static int jcontainer(jparser *j, fx_json *v, char close) {
    size_t cap = 0;
    if (++j->depth > 64) return jfail(j, "nesting too deep");
    j->p++;
    jskip(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        size_t i;
        if (jpush(j, v, &cap)) return -1;
        i = v->count - 1;
        jskip(j);
        if (close == '}') {
            if (jstring(j, &v->keys[i])) return -1;
            jskip(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "expected ':'");
            j->p++;
        }
        if (jvalue(j, &v->items[i])) return -1;
        jskip(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            j->depth--;
            return 0;
        }
        return jfail(j, "expected ',' or the end of a container");
    }
}

static int jliteral(jparser *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) return jfail(j, "unexpected token");
    j->p += n;
    return 0;
}

static int jvalue(jparser *j, fx_json *v) {
    jskip(j);
    if (j->p >= j->end) return jfail(j, "unexpected end of input");
    switch (*j->p) {
    case '{': v->kind = FX_JOBJECT; return jcontainer(j, v, '}');
    case '[': v->kind = FX_JARRAY; return jcontainer(j, v, ']');
    case '"': v->kind = FX_JSTRING; return jstring(j, &v->string);
    case 't': v->kind = FX_JBOOL; v->number = 1; return jliteral(j, "true");
    case 'f': v->kind = FX_JBOOL; v->number = 0; return jliteral(j, "false");
    case 'n': v->kind = FX_JNULL; return jliteral(j, "null");
    default: {
        char tmp[64];
        size_t n = 0;
        char *endp;
        while (j->p + n < j->end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", j->p[n])) {
            tmp[n] = j->p[n];
            n++;
        }
        tmp[n] = '\0';
        if (n == 0) return jfail(j, "unexpected character");
        v->kind = FX_JNUMBER;
        v->number = strtod(tmp, &endp);
        if (*endp != '\0') return jfail(j, "bad number");
        j->p += n;
        return 0;
    }
    }
}

fx_json *fx_json_parse(const char *text, size_t len, const char **error) {
    jparser j;
    fx_json *v = calloc(1, sizeof *v);
    j.p = text;
    j.end = text + len;
    j.error = NULL;
    j.depth = 0;
    if (!v) {
        if (error) *error = "out of memory";
        return NULL;
    }
    if (jvalue(&j, v) == 0) {
        jskip(&j);
        if (j.p != j.end) jfail(&j, "trailing characters");
    }
    if (j.error) {
        if (error) *error = j.error;
        fx_json_free(v);
        return NULL;
    }
    return v;
}

void fx_json_free(fx_json *value) {
    if (!value) return;
    jclear(value);
    free(value);
}

const fx_json *fx_json_get(const fx_json *object, const char *key) {
    size_t i;
    if (!object || object->kind != FX_JOBJECT) return NULL;
    for (i = 0; i < object->count; i++)
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    return NULL;
}

/* ---- files ----------------------------------------------------------------------------------- */

unsigned char *fx_read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (cap - n < 4096 + 1) {
            size_t ncap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int fx_write_all(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

/* ---- safetensors ----------------------------------------------------------------------------- */

static uint64_t read_le64(const unsigned char *b) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static size_t dtype_size(const char *dtype) {
    if (!strcmp(dtype, "F64") || !strcmp(dtype, "I64") || !strcmp(dtype, "U64")) return 8;
    if (!strcmp(dtype, "F32") || !strcmp(dtype, "I32") || !strcmp(dtype, "U32")) return 4;
    if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16") || !strcmp(dtype, "I16") || !strcmp(dtype, "U16")) return 2;
    if (!strcmp(dtype, "I8") || !strcmp(dtype, "U8") || !strcmp(dtype, "BOOL")) return 1;
    return 0;
}

static void fx_fail(const char *path, const char *why) {
    fprintf(stderr, "fixture: %s: %s\n", path, why);
}

fx_file *fx_open(const char *path) {
    fx_file *f = calloc(1, sizeof *f);
    const char *err = NULL;
    size_t i, data_len;
    if (!f) return NULL;
    f->bytes = fx_read_all(path, &f->size);
    if (!f->bytes) {
        fx_fail(path, "cannot read the file");
        goto fail;
    }
    if (f->size < 8) {
        fx_fail(path, "shorter than 8 bytes");
        goto fail;
    }
    f->header_len = read_le64(f->bytes);
    if (f->header_len > f->size - 8) {
        fx_fail(path, "header length beyond the end of the file");
        goto fail;
    }
    f->header = fx_json_parse((const char *)f->bytes + 8, (size_t)f->header_len, &err);
    if (!f->header || f->header->kind != FX_JOBJECT) {
        fx_fail(path, err ? err : "the header is not a JSON object");
        goto fail;
    }
    data_len = f->size - 8 - (size_t)f->header_len;
    f->tensors = calloc(f->header->count ? f->header->count : 1, sizeof *f->tensors);
    if (!f->tensors) goto fail;
    for (i = 0; i < f->header->count; i++) {
        const fx_json *entry = &f->header->items[i];
        const fx_json *dtype, *shape, *offsets;
        fx_tensor *t;
        size_t k, esize;
        if (!strcmp(f->header->keys[i], "__metadata__")) continue;
        dtype = fx_json_get(entry, "dtype");
        shape = fx_json_get(entry, "shape");
        offsets = fx_json_get(entry, "data_offsets");
        if (!dtype || dtype->kind != FX_JSTRING || !shape || shape->kind != FX_JARRAY || !offsets ||
            offsets->kind != FX_JARRAY || offsets->count != 2 || shape->count > FX_MAX_DIMS ||
            strlen(dtype->string) >= sizeof f->tensors[0].dtype) {
            fx_fail(path, "malformed tensor entry");
            goto fail;
        }
        t = &f->tensors[f->count++];
        t->name = f->header->keys[i];
        strcpy(t->dtype, dtype->string);
        t->ndim = (int)shape->count;
        t->numel = 1;
        for (k = 0; k < shape->count; k++) {
            t->shape[k] = (int64_t)shape->items[k].number;
            t->numel *= (size_t)t->shape[k];
        }
        t->begin = (size_t)offsets->items[0].number;
        t->end = (size_t)offsets->items[1].number;
        esize = dtype_size(t->dtype);
        if (t->begin > t->end || t->end > data_len || (esize && t->end - t->begin != t->numel * esize)) {
            fx_fail(path, "tensor data out of range");
            goto fail;
        }
        if (!strcmp(t->dtype, "F32")) {
            t->data = malloc(t->numel ? t->numel * sizeof(float) : 1);
            if (!t->data) goto fail;
            memcpy(t->data, f->bytes + 8 + f->header_len + t->begin, t->numel * sizeof(float));
        }
    }
    return f;
fail:
    fx_close(f);
    return NULL;
}

void fx_close(fx_file *file) {
    size_t i;
    if (!file) return;
    for (i = 0; i < file->count; i++) free(file->tensors[i].data);
    free(file->tensors);
    fx_json_free(file->header);
    free(file->bytes);
    free(file);
}

const fx_tensor *fx_tensor_get(const fx_file *file, const char *name) {
    size_t i;
    if (!file) return NULL;
    for (i = 0; i < file->count; i++)
        if (!strcmp(file->tensors[i].name, name)) return &file->tensors[i];
    return NULL;
}

const float *fx_f32(const fx_file *file, const char *name, size_t *numel) {
    const fx_tensor *t = fx_tensor_get(file, name);
    if (!t || !t->data) return NULL;
    if (numel) *numel = t->numel;
    return t->data;
}

const char *fx_meta(const fx_file *file, const char *key) {
    const fx_json *v;
    if (!file) return NULL;
    v = fx_json_get(fx_json_get(file->header, "__metadata__"), key);
    return v && v->kind == FX_JSTRING ? v->string : NULL;
}

unsigned char *fx_build(const char *header, const void *data, size_t data_len, size_t *len) {
    size_t hlen = strlen(header), i;
    unsigned char *out = malloc(8 + hlen + data_len + 1);
    if (!out) return NULL;
    for (i = 0; i < 8; i++) out[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xFF);
    memcpy(out + 8, header, hlen);
    if (data_len) memcpy(out + 8 + hlen, data, data_len);
    *len = 8 + hlen + data_len;
    return out;
}
