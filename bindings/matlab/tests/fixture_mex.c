/* fixture_mex.c: test-only mex that reads the reference fixtures (.safetensors) for the Octave tests,
 * with the C test suite's reader (bindings/c/tests/fixture.c).
 *
 *   X = fixture_mex('tensor', path, name)   float32 tensor `name` as a single array of the reversed
 *                                           shape: the same bytes, so a row-major (a, b, c) tensor
 *                                           comes out as c x b x a (a (n, d) one as d x n)
 *   v = fixture_mex('meta', path, key)      a __metadata__ string, or [] when absent
 *   c = fixture_mex('names', path)          the tensor names, a column cell array
 */
#include <string.h>

#include "mex.h"
#include "fixture.h"

static fx_file *open_or_fail(const mxArray *path_arg) {
    char *path = mxArrayToString(path_arg);
    fx_file *file;
    if (!path) mexErrMsgIdAndTxt("fixture:args", "the path must be text");
    file = fx_open(path);
    if (!file) mexErrMsgIdAndTxt("fixture:open", "cannot read the fixture %s", path);
    mxFree(path);
    return file;
}

void mexFunction(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char command[16];
    fx_file *file;
    (void)nlhs;
    if (nrhs < 2 || mxGetString(prhs[0], command, sizeof command) != 0)
        mexErrMsgIdAndTxt("fixture:args", "usage: fixture_mex('tensor'|'meta'|'names', path, ...)");
    if (strcmp(command, "names") == 0) {
        size_t i;
        file = open_or_fail(prhs[1]);
        plhs[0] = mxCreateCellMatrix(file->count, 1);
        for (i = 0; i < file->count; i++) mxSetCell(plhs[0], i, mxCreateString(file->tensors[i].name));
        fx_close(file);
        return;
    }
    if (nrhs != 3) mexErrMsgIdAndTxt("fixture:args", "fixture_mex('%s', path, name): 3 arguments", command);
    if (strcmp(command, "tensor") == 0) {
        char *name = mxArrayToString(prhs[2]);
        const fx_tensor *t;
        mwSize dims[FX_MAX_DIMS + 1];
        int k;
        file = open_or_fail(prhs[1]);
        t = name ? fx_tensor_get(file, name) : NULL;
        if (!t || !t->data) {
            fx_close(file);
            mexErrMsgIdAndTxt("fixture:tensor", "no float32 tensor '%s' in the fixture", name ? name : "?");
        }
        for (k = 0; k < t->ndim; k++) dims[k] = (mwSize)t->shape[t->ndim - 1 - k];
        /* 0-D and 1-D tensors: a column vector. */
        if (t->ndim == 0) dims[0] = 1;
        if (t->ndim < 2) dims[1] = 1;
        plhs[0] = mxCreateNumericArray(t->ndim < 2 ? 2 : (mwSize)t->ndim, dims, mxSINGLE_CLASS, mxREAL);
        if (t->numel) memcpy(mxGetData(plhs[0]), t->data, t->numel * sizeof(float));
        fx_close(file);
        mxFree(name);
    } else if (strcmp(command, "meta") == 0) {
        char *key = mxArrayToString(prhs[2]);
        const char *value;
        file = open_or_fail(prhs[1]);
        value = key ? fx_meta(file, key) : NULL;
        plhs[0] = value ? mxCreateString(value) : mxCreateDoubleMatrix(0, 0, mxREAL);
        fx_close(file);
        mxFree(key);
    } else {
        mexErrMsgIdAndTxt("fixture:args", "unknown command '%s'", command);
    }
}
