function failed = run_tests()
%RUN_TESTS  Test suite of the +cebra package (GNU Octave; written to run under MATLAB as well).
%   FAILED = run_tests() runs every test, prints one line per test and a RESULT line, and returns
%   the number of failed checks. The numbers are checked against the reference fixtures of
%   tests/fixtures (Python cebra 0.6.1), read by the test-only fixture_mex (bindings/c/tests/fixture.c).
%   CEBRA_FIXTURES overrides the fixture directory; CEBRA_TEST_QUICK=1 checks fewer models.
here = fileparts(mfilename('fullpath'));
addpath(fullfile(here, '..'));
addpath(here);
global RESULTS
RESULTS = struct('passed', 0, 'failed', 0);
fixtures = getenv('CEBRA_FIXTURES');
if isempty(fixtures)
  fixtures = fullfile(here, '..', '..', '..', 'tests', 'fixtures');
end
manifest = jsondecode(fileread(fullfile(fixtures, 'manifest.json')));
env = struct('fixtures', fixtures, 'manifest', manifest, 'tmp', tempname());
mkdir(env.tmp);
cebra.setNumThreads(1);

tests = {@test_version_and_runtime, @test_errors, @test_get_options, @test_models, @test_double_input, ...
         @test_roundtrip, @test_seed, @test_criterions, @test_similarity, @test_bad_inputs, ...
         @test_transform, @test_callbacks, @test_handles, @test_solver, @test_help};
for i = 1:numel(tests)
  name = func2str(tests{i});
  before = RESULTS.failed;
  started = tic;
  try
    tests{i}(env);
  catch err
    check(false, '%s stopped with %s: %s', name, err.identifier, err.message);
  end
  if RESULTS.failed == before, verdict = 'ok'; else, verdict = 'FAILED'; end
  fprintf('octave: %-26s %s (%.1f s)\n', name, verdict, toc(started));
end
confirm_no_handles_left();
rmdir(env.tmp, 's');
fprintf('RESULT octave: %d passed, %d failed\n', RESULTS.passed, RESULTS.failed);
failed = RESULTS.failed;
end

% ---- harness ---------------------------------------------------------------------------------

function ok = check(ok, varargin)
global RESULTS
if ok
  RESULTS.passed = RESULTS.passed + 1;
else
  RESULTS.failed = RESULTS.failed + 1;
  fprintf('  FAIL: %s\n', sprintf(varargin{:}));
end
end

% Runs FN, which must raise an error with identifier ID (and a message containing NEEDLE, if given).
function expect_error(fn, id, needle, what)
if nargin < 3, needle = ''; end
if nargin < 4, what = func2str(fn); end
try
  fn();
  check(false, '%s: no error (expected %s)', what, id);
catch err
  ok = strcmp(err.identifier, id) && (isempty(needle) || ~isempty(strfind(err.message, needle)));
  expected = id;
  if ~isempty(needle), expected = [id ' containing "' needle '"']; end
  check(ok, '%s: got %s "%s", expected %s', what, err.identifier, err.message, expected);
end
end

function t = ifelse_text(cond, a, b)
if cond, t = a; else, t = b; end
end

% |got - want| <= max(absTol, relTol * |want|) everywhere (NaN matching NaN).
function ok = close_to(got, want, relTol, absTol)
got = double(got(:));
want = double(want(:));
ok = numel(got) == numel(want);
if ok
  both_nan = isnan(got) & isnan(want);
  ok = all(both_nan | abs(got - want) <= max(absTol, relTol * abs(want)));
end
end

function X = tensor(env, file, name)
X = fixture_mex('tensor', fullfile(env.fixtures, file), name);
end

function v = meta(env, file, key)
v = fixture_mex('meta', fullfile(env.fixtures, file), key);
end

function c = as_cell_column(v)
if isempty(v)
  c = cell(0, 1);
elseif iscell(v)
  c = v(:);
else
  c = {v};
end
end

function n = live_handles()
n = cebra_mex('stats');
end

function confirm_no_handles_left()
[handles, registrations, locked] = cebra_mex('stats');
check(handles == 0 && registrations == 0 && ~locked, ...
      'after the suite: %d live handles, %d registrations, locked %d', handles, registrations, locked);
end

% ---- version, runtime, errors ----------------------------------------------------------------

function test_version_and_runtime(env)
v = cebra.version();
check(ischar(v) && ~isempty(regexp(v, '^\d+\.\d+\.\d+$', 'once')), 'cebra.version() = "%s"', v);
[library, compiled] = cebra.abiVersion();
check(library == compiled && library >= 1, 'abiVersion: library %d, compiled %d', library, compiled);
check(islogical(cebra.cudaIsAvailable()) && ~cebra.cudaIsAvailable(), 'the CPU build has no CUDA');
cebra.manualSeed(0);
cebra.manualSeed(uint64(18446744073709551615));
cebra.setNumThreads(2);
cebra.setNumThreads(1);
check(strcmp(cebra_mex('status_name', 5), 'CEBRA_STATUS_SHAPE_MISMATCH'), 'status_name(5)');
check(strcmp(cebra_mex('status_name', 999), 'CEBRA_STATUS_UNKNOWN'), 'status_name(999)');
check(strcmp(env.manifest.cebra_version, '0.6.1'), 'fixtures come from cebra 0.6.1');
end

function test_errors(env)
% Library errors become cebra:<STATUS> with the library's message.
expect_error(@() cebra.Model('no-such-model', 7, 12, 3), 'cebra:UNKNOWN_NAME', 'no-such-model');
expect_error(@() cebra_mex('debug_panic'), 'cebra:PANIC', 'internal error');
% ...and the library goes on working after a caught panic.
m = cebra.Model('offset10-model', 7, 12, 3);
check(numInput(m) == 7, 'the library works after a panic');
expect_error(@() cebra_mex('no_such_command'), 'cebra:INVALID_ARGUMENT', 'unknown command');
expect_error(@() cebra_mex(), 'cebra:INVALID_ARGUMENT', 'command');
expect_error(@() cebra_mex('model_num_input', m.Id, 1), 'cebra:INVALID_ARGUMENT', 'expected 1 argument');
end

% ---- registry --------------------------------------------------------------------------------

function test_get_options(env)
names = env.manifest.names;
all_names = cebra.getOptions();
check(iscell(all_names) && size(all_names, 2) == 1, 'getOptions gives a column cell array');
check(isequal(all_names, names(:)) && numel(all_names) == 147, 'getOptions() = the 147 reference names in order');
unexpanded = cebra.getOptions([], 'ExpandParametrized', false);
check(isequal(unexpanded, env.manifest.names_unexpanded(:)) && numel(unexpanded) == 29, 'ExpandParametrized=false gives 29 names');
check(isequal(cebra.getOptions([], 'Limit', 5), names(1:5)), 'Limit 5');
check(isequal(cebra.getOptions('*', 'limit', 5), names(1:5)), 'option names are case-insensitive');
check(isequal(cebra.getOptions('no-such-*'), cell(0, 1)), 'no match gives an empty cell');
queries = env.manifest.queries;
for i = 1:numel(queries)
  if iscell(queries), q = queries{i}; else, q = queries(i); end
  limit = 0;
  if ~isempty(q.limit)
    if q.limit <= 0, continue; end  % no C form of 0 / negative Python limits
    limit = q.limit;
  end
  got = cebra.getOptions(q.pattern, 'Limit', limit, 'ExpandParametrized', logical(q.expand));
  check(isequal(got, as_cell_column(q.result)), 'getOptions(%s, Limit %d, expand %d) = reference', ...
        ifelse_text(isempty(q.pattern), '[]', q.pattern), limit, q.expand);
end
check(isequal(cebra.Criterion.getOptions(), {'fixed-cosine-infonce'; 'fixed-euclidean-infonce'; ...
      'learnable-cosine-infonce'; 'learnable-euclidean-infonce'; 'nce'; 'infonce'; 'infomse'}), 'criterion names');
check(isequal(cebra.Criterion.getOptions('*infonce', 'Limit', 1), {'fixed-cosine-infonce'}), 'criterion pattern + limit');
end

% ---- models ----------------------------------------------------------------------------------

function yes = is_classifier(name)
yes = strncmp(name, 'supervised', 10);
end

% Builds ARCH, loads models/WEIGHTS.safetensors and checks against models/WEIGHTS.io.safetensors.
function check_model(env, arch, weights)
io = ['models/' weights '.io.safetensors'];
X = tensor(env, io, 'input');             % (batch, 7, time) row-major = time x 7 x batch here
want = tensor(env, io, 'output');         % (batch, 3[, outTime]) = [outTime x] 3 x batch
m = cebra.Model(arch, 7, 12, 3);
if is_classifier(arch), setOutputNum(m, 5); end
load(m, fullfile(env.fixtures, 'models', [weights '.safetensors']));
left = meta(env, io, 'offset_left');
if ~isempty(left)
  [l, r] = offset(m);
  check(l == str2double(left) && r == str2double(meta(env, io, 'offset_right')), '%s: offset (%d, %d)', arch, l, r);
end
factor = meta(env, io, 'resample_factor');
if ~isempty(factor)
  check(resampleFactor(m) == str2double(factor), '%s: resampleFactor', arch);
end
total = meta(env, io, 'num_parameters_total');
if ~isempty(total)
  [t, tr] = numParameters(m);
  check(t == str2double(total) && tr == str2double(meta(env, io, 'num_parameters_trainable')), ...
        '%s: numParameters (%d, %d)', arch, t, tr);
end
check(numInput(m) == 7 && numOutput(m) == 3, '%s: numInput/numOutput', arch);
Y = forward(m, X);
batch = size(X, 3);
out_time = outputTime(m, size(X, 1));
check(isa(Y, 'single') && isequal(size(Y), [out_time, 3, batch]), '%s: output size %s, outTime %d', arch, ...
      mat2str(size(Y)), out_time);
check(close_to(Y, want, 0, 1e-5), '%s: forward max abs diff %g', arch, max(abs(double(Y(:)) - double(want(:)))));
if ~isempty(strfind(arch, 'dropout'))
  setTraining(m, true);
  check(max(abs(double(reshape(forward(m, X), [], 1)) - double(want(:)))) > 1e-3, '%s: training mode applies dropout', arch);
  setTraining(m, false);
  check(close_to(forward(m, X), want, 0, 1e-5), '%s: eval mode again', arch);
end
if is_classifier(arch)
  [features, prediction] = forwardClassifier(m, X);
  check(close_to(features, tensor(env, io, 'features')', 0, 1e-5), '%s: classifier features (batch x 3)', arch);
  check(isequal(size(prediction), [batch, 5]) && close_to(prediction, tensor(env, io, 'prediction')', 0, 1e-5), ...
        '%s: classifier prediction (batch x 5)', arch);
end
end

function test_models(env)
required = {'offset10-model', 'offset5-model', 'offset1-model', 'offset40-model-4x-subsample', ...
            'offset4-model-2x-subsample', 'offset1-model-mse-clip-1-1', 'offset1-model-mse-v2-3layers-tanh', ...
            'offset1-model-mse-resnet-2layers', 'supervised10-model', 'supervised1-model', ...
            'offset36-model-dropout', 'resample-model'};
for i = 1:numel(required)
  check_model(env, required{i}, required{i});
end
% Tied tensors whose keys hold different values: the last key wins, as in the reference.
check_model(env, 'offset1-model-mse-v2-3layers', 'tied-offset1-model-mse-v2-3layers');
quick = getenv('CEBRA_TEST_QUICK');
if isempty(quick) || strcmp(quick, '0')
  names = env.manifest.names;
  for i = 1:numel(names)
    if ~any(strcmp(names{i}, required))
      check_model(env, names{i}, names{i});
    end
  end
end
end

% Doubles are converted and give the same numbers, as doubles; batches are the third dimension.
function test_double_input(env)
io = 'models/offset5-model.io.safetensors';
X = tensor(env, io, 'input');
m = cebra.Model('offset5-model', 7, 12, 3);
load(m, fullfile(env.fixtures, 'models', 'offset5-model.safetensors'));
Ys = forward(m, X);
Yd = forward(m, double(X));
check(isa(Yd, 'double') && isequal(Yd, double(Ys)), 'double input gives the single result as double');
one = forward(m, X(:, :, 2));
check(isequal(size(one), size(Ys(:, :, 2))) && close_to(one, Ys(:, :, 2), 0, 1e-6), 'one batch entry (time x neurons) = that slice of the batched forward');
end

function test_roundtrip(env)
cases = {'offset10-model', {}; 'offset1-model-mse-v2-3layers-tanh', {}; 'supervised10-model', {}; ...
         'offset5-model', {'normalize', true}};
for i = 1:size(cases, 1)
  name = cases{i, 1};
  m = cebra.Model(name, 7, 12, 3, cases{i, 2}{:});
  if is_classifier(name), setOutputNum(m, 5); end
  load(m, fullfile(env.fixtures, 'models', [name '.safetensors']));
  path = fullfile(env.tmp, [name '.safetensors']);
  save(m, path);
  loaded = cebra.Model.fromFile(path);
  fresh = cebra.Model(name, 7, 12, 3, cases{i, 2}{:});
  if is_classifier(name), setOutputNum(fresh, 5); end
  load(fresh, path);
  X = tensor(env, ['models/' name '.io.safetensors'], 'input');
  Y = forward(m, X);
  check(isequal(forward(loaded, X), Y), '%s: save -> fromFile gives identical output', name);
  check(isequal(forward(fresh, X), Y), '%s: save -> load gives identical output', name);
  check(isequal(offset(loaded), offset(m)), '%s: fromFile rebuilds the architecture', name);
  check(close_to(Y, tensor(env, ['models/' name '.io.safetensors'], 'output'), 0, 1e-5), '%s: reference output', name);
  if is_classifier(name)
    % The head size comes from the file here (the gateway finds it; the ABI does not report it).
    [f1, p1] = forwardClassifier(m, X);
    [f2, p2] = forwardClassifier(loaded, X);
    check(isequal(f1, f2) && isequal(p1, p2) && size(p2, 2) == 5, '%s: the classifier head survives the round trip', name);
  end
end
end

function test_seed(env)
X = reshape(mod((0:69) * 37, 11) - 5, 10, 7) * 0.1;
cebra.manualSeed(42); a = cebra.Model('offset10-model', 7, 12, 3);
cebra.manualSeed(42); b = cebra.Model('offset10-model', 7, 12, 3);
cebra.manualSeed(43); c = cebra.Model('offset10-model', 7, 12, 3);
ya = forward(a, X);
check(isequal(ya, forward(b, X)), 'the same seed gives the same weights');
check(~isequal(ya, forward(c, X)), 'another seed gives other weights');
check(abs(norm(ya) - 1) < 1e-5, 'offset10-model output is normalised');
cebra.manualSeed(42); d = cebra.Model('offset10-model', 7, 12, 3, 'normalize', false);
check(abs(norm(forward(d, X)) - 1) > 1e-4, 'the option normalize=false reaches the model');
end

% ---- criterions ------------------------------------------------------------------------------

% Option string "k=v;k=v" of a fixture as name/value pairs (values as text).
function pairs = option_pairs(options)
pairs = {};
if isempty(options), return; end
items = strsplit(options, ';');
for i = 1:numel(items)
  kv = strsplit(strtrim(items{i}), '=');
  pairs = [pairs, {strtrim(kv{1}), strtrim(kv{2})}]; %#ok<AGROW>
end
end

function check_criterion_case(env, name)
file = ['criterions/' name '.safetensors'];
ref = tensor(env, file, 'ref')';          % fixtures are row-major (n, d): transposed to n x d
pos = tensor(env, file, 'pos')';
neg = tensor(env, file, 'neg')';
want_loss = tensor(env, file, 'loss');
criterion = meta(env, file, 'criterion');
c = cebra.Criterion(criterion, option_pairs(meta(env, file, 'options')){:});
extreme = ~isempty(strfind(name, 'extreme'));
tol = @(want) max(1e-6, extreme * 1e-5 * max(abs(double(want(:)))));
temp = meta(env, file, 'temperature');
if ~isempty(temp)
  check(abs(temperature(c) - str2double(temp)) <= 1e-6 * str2double(temp), '%s: temperature', name);
end
[loss, align, uniform] = forward(c, ref, pos, neg);
check(close_to(loss, want_loss, 1e-5, tol(want_loss)), '%s: loss %g vs %g', name, loss(1), want_loss(1));
want = tensor(env, file, 'align');
check(close_to(align, want, 1e-5, tol(want)), '%s: align', name);
want = tensor(env, file, 'uniform');
check(close_to(uniform, want, 1e-5, tol(want)), '%s: uniform', name);
if strcmp(criterion, 'nce')
  check(isequal(size(loss), [size(ref, 1), 1]), '%s: nce gives n x 1 per-sample values', name);
  want_scalar = -mean(double(want_loss));
else
  check(isscalar(loss), '%s: one loss value', name);
  want_scalar = double(want_loss);
end
[scalar, gref, gpos, gneg, glit] = backward(c, ref, pos, neg);
check(close_to(scalar, want_scalar, 1e-5, 1e-6), '%s: backward loss %g vs %g', name, scalar, want_scalar);
want = tensor(env, file, 'grad_ref')';
check(isequal(size(gref), size(ref)) && close_to(gref, want, 1e-5, tol(want)), '%s: grad_ref', name);
want = tensor(env, file, 'grad_pos')';
check(close_to(gpos, want, 1e-5, tol(want)), '%s: grad_pos', name);
want = tensor(env, file, 'grad_neg')';
check(isequal(size(gneg), size(neg)) && close_to(gneg, want, 1e-5, tol(want)), '%s: grad_neg', name);
names = fixture_mex('names', fullfile(env.fixtures, file));
if any(strcmp(names, 'grad_log_inverse_temperature'))
  want = tensor(env, file, 'grad_log_inverse_temperature');
  check(isscalar(glit) && close_to(glit, want, 1e-5, tol(want)), '%s: grad_log_inverse_temperature', name);
else
  check(isempty(glit), '%s: no temperature gradient for a fixed criterion', name);
end
% Fewer outputs: the same loss; and nothing accumulates between calls.
check(isequal(backward(c, ref, pos, neg), scalar), '%s: backward with one output', name);
[~, gref2] = backward(c, ref, pos, neg);
check(isequal(gref2, gref), '%s: a second backward gives the same gradient', name);
% Double input gives double output of the same numbers.
[loss_d, ~, ~] = forward(c, double(ref), double(pos), double(neg));
check(isa(loss_d, 'double') && isequal(loss_d, double(loss)), '%s: double input', name);
end

function test_criterions(env)
cases = env.manifest.criterion_cases;
check(numel(cases) >= 50, 'the manifest lists the criterion cases');
for i = 1:numel(cases)
  check_criterion_case(env, cases{i});
end
ref = [1 0; 0 1; 0.6 0.8]; pos = [0.8 0.6; 1 0; 0 1]; neg = [0 1; 1 0];
[l1, a1, u1] = forward(cebra.Criterion('infonce', 'temperature', 0.5), ref, pos, neg);
[l2, a2, u2] = forward(cebra.Criterion('fixed-cosine-infonce', 'temperature', 0.5), ref, pos, neg);
check(isequal([l1 a1 u1], [l2 a2 u2]), 'infonce is fixed-cosine-infonce');
end

function test_similarity(env)
file = 'criterions/similarity.safetensors';
cases = {'example', 'random1', 'random2'};
for k = 1:numel(cases)
  c = cases{k};
  T = @(suffix) tensor(env, file, [c '.' suffix]);
  ref = T('ref')'; pos = T('pos')'; neg = T('neg')';
  [p, q] = cebra.dotSimilarity(ref, pos, neg);
  check(isequal(size(p), [size(ref, 1), 1]) && isequal(size(q), [size(ref, 1), size(neg, 1)]), '%s: shapes', c);
  check(close_to(p, T('dot_pos'), 1e-5, 1e-6) && close_to(q, T('dot_neg')', 1e-5, 1e-6), '%s: dot similarity', c);
  [loss, align, uniform] = cebra.infonce(T('dot_pos'), T('dot_neg')');
  check(close_to(loss, T('infonce_loss'), 1e-5, 1e-6) && close_to(align, T('infonce_align'), 1e-5, 1e-6) && ...
        close_to(uniform, T('infonce_uniform'), 1e-5, 1e-6), '%s: infonce', c);
  [p, q] = cebra.euclideanSimilarity(ref, pos, neg);
  check(close_to(p, T('euclidean_pos'), 1e-5, 1e-6) && close_to(q, T('euclidean_neg')', 1e-5, 1e-6), ...
        '%s: euclidean similarity', c);
end
end

% ---- bad input -------------------------------------------------------------------------------

function test_bad_inputs(env)
m = cebra.Model('offset10-model', 7, 12, 3);
X = randn(20, 7);
IA = 'cebra:INVALID_ARGUMENT';
expect_error(@() forward(m, complex(X, X)), IA, 'complex');
expect_error(@() forward(m, sparse(X)), IA, 'sparse');
expect_error(@() forward(m, {X}), IA, 'cell');
expect_error(@() forward(m, int32(X)), IA, 'int32');
expect_error(@() forward(m, 'text'), IA, 'char');
expect_error(@() forward(m, zeros(0, 7)), IA, 'empty');
expect_error(@() forward(m, randn(20, 7, 2, 2)), IA, '3-D');
expect_error(@() forward(m, randn(20, 6)), 'cebra:SHAPE_MISMATCH');
expect_error(@() forward(m, randn(9, 7)), 'cebra:SHAPE_MISMATCH');
expect_error(@() outputTime(m, 9), 'cebra:SHAPE_MISMATCH');
expect_error(@() cebra.Model('offset10-model', 7, 12, 3, 'no_such_option', 1), IA, 'no_such_option');
expect_error(@() cebra.Model('offset10-model', 7, 12, 3, 'normalize'), IA, 'name/value');
expect_error(@() cebra.Model('offset10-model', 7, 12, 3, 'normalize', {1}), IA, 'cell');
expect_error(@() cebra.Model('offset10-model', 7, 12, 3, 'normalize', 'a;b=c'), IA, ';');
expect_error(@() cebra.Model('offset10-model', 0, 12, 3), IA);
expect_error(@() cebra.Model('offset10-model', 7.5, 12, 3), IA, 'integer');
expect_error(@() cebra.Model('offset10-model', [7 7], 12, 3), IA, 'scalar');
expect_error(@() cebra.Model(42, 7, 12, 3), IA, 'text');
expect_error(@() cebra.Model(['offset10-model' char(0) 'x'], 7, 12, 3), IA, 'NUL');
expect_error(@() cebra.Model(['offset10-model'; 'offset10-model'], 7, 12, 3), IA, 'row vector');
expect_error(@() cebra.Model('offset10-model', 7), IA, 'usage');
expect_error(@() load(m, fullfile(env.tmp, 'no-such-file.safetensors')), 'cebra:IO');
text_file = fullfile(env.tmp, 'not-safetensors.txt');
fid = fopen(text_file, 'w'); fprintf(fid, 'this is not a safetensors file\n'); fclose(fid);
expect_error(@() load(m, text_file), 'cebra:FORMAT');
expect_error(@() load(m, fullfile(env.fixtures, 'models', 'offset5-model.safetensors')), 'cebra:FORMAT');
expect_error(@() cebra.Model.fromFile(fullfile(env.tmp, 'no-such-file.safetensors')), 'cebra:IO');
expect_error(@() setTraining(m, 2), IA, 'true or false');
expect_error(@() forwardClassifier(cebra.Model('supervised10-model', 7, 12, 3), X), 'cebra:SHAPE_MISMATCH');
c = cebra.Criterion('infonce');
expect_error(@() forward(c, randn(5, 3), randn(4, 3), randn(4, 3)), 'cebra:SHAPE_MISMATCH', 'pos');
expect_error(@() forward(c, randn(5, 3), randn(5, 3), randn(4, 2)), 'cebra:SHAPE_MISMATCH', 'neg');
expect_error(@() backward(c, randn(5, 3), randn(5, 3), complex(randn(4, 3), 1)), IA, 'complex');
expect_error(@() forward(c, randn(5, 3, 2), randn(5, 3), randn(4, 3)), IA, '2-D');
expect_error(@() cebra.Criterion('no-such-loss'), 'cebra:UNKNOWN_NAME', 'no-such-loss');
expect_error(@() cebra.Criterion('nce', 'min_temperature', 0.1), IA, 'min_temperature');
expect_error(@() cebra.Criterion('infonce', 'temperature', -1), IA, 'temperature');
expect_error(@() cebra.infonce(randn(3, 1), randn(4, 2)), 'cebra:SHAPE_MISMATCH');
expect_error(@() cebra.setNumThreads(0), IA);
expect_error(@() cebra.manualSeed(-1), IA);
expect_error(@() cebra.getOptions(5), IA, 'text');
expect_error(@() cebra.getOptions([], 'Limit', -1), IA, 'limit');
expect_error(@() cebra.getOptions([], 'Bogus', 1), IA, 'Bogus');
end

% ---- whole recordings and streaming ----------------------------------------------------------

% The model of a transform fixture, with the reference's weights.
function [m, file] = transform_model(env, name)
file = ['transform/' name '.safetensors'];
arch = meta(env, file, 'name');
X = tensor(env, file, 'input');           % (T, N) row-major = N x T here
if strcmp(name(max(1, end - 4):end), '-wide')
  m = cebra.Model(arch, size(X, 1), 32, 8);
else
  m = cebra.Model(arch, size(X, 1), 12, 3);
end
load(m, fullfile(env.fixtures, meta(env, file, 'weights')));
end

function test_transform(env)
cases = {'offset10-model', 'offset10-model-mse', 'offset5-model', 'offset15-model', ...
         'offset36-model-more-dropout', 'offset10-model-mse-tanh', 'offset1-model', 'offset1-model-v4', ...
         'offset1-model-v5', 'offset1-model-mse-clip-5-5', 'offset1-model-mse-resnet-3layers-tanh', ...
         'offset1-model-mse-v2-2layers', 'offset40-model-4x-subsample', 'offset20-model-4x-subsample', ...
         'offset10-model-wide'};
for i = 1:numel(cases)
  name = cases{i};
  [m, file] = transform_model(env, name);
  X = tensor(env, file, 'input')';        % time x neurons, as a MATLAB user has it
  padded = tensor(env, file, 'padded')';
  unpadded = tensor(env, file, 'unpadded')';
  Y = transform(m, X);
  check(isequal(size(Y), size(padded)) && close_to(Y, padded, 0, 1e-5), '%s: transform (padded by default)', name);
  check(close_to(transform(m, X, 'Pad', false), unpadded, 0, 1e-5), '%s: transform, Pad false', name);
  Yd = transform(m, double(X));
  check(isa(Yd, 'double') && close_to(Yd, padded, 0, 1e-5), '%s: double input', name);
  names = fixture_mex('names', fullfile(env.fixtures, file));
  keys = {'batched_padded', 'batched_unpadded'};
  for k = 1:2
    if any(strcmp(names, keys{k}))
      want = tensor(env, file, keys{k})';
      got = transform(m, X, 'Pad', k == 1, 'BatchSize', str2double(meta(env, file, 'batch_size')));
      check(close_to(got, want, 0, 1e-5), '%s: %s', name, keys{k});
    end
  end
  % Streaming: pushing the recording row by row gives the unpadded rows (not for resampling models).
  if resampleFactor(m) == 1
    s = cebra.Stream(m);
    [l, r] = offset(m);
    check(lookahead(s) == r - 1, '%s: lookahead', name);
    % Rows 1 .. L-1 (L = l + r) fill the receptive field; each later row completes one embedding.
    [first, ready] = push(s, X(1:l + r - 1, :));
    check(isempty(first) && numel(ready) == l + r - 1 && ~any(ready), '%s: nothing before the receptive field is full', name);
    rest = zeros(0, size(unpadded, 2), 'single');
    for t = l + r:size(X, 1)
      rest = [rest; push(s, X(t, :))]; %#ok<AGROW>
    end
    check(close_to(rest, unpadded, 0, 1e-5), '%s: stream = unpadded transform', name);
    reset(s);
    [again, ready] = push(s, X);
    check(close_to(again, unpadded, 0, 1e-5) && sum(ready) == size(unpadded, 1), '%s: reset, then all rows at once', name);
    clear m                                % the stream keeps its model alive
    reset(s);
    check(close_to(push(s, X), unpadded, 0, 1e-5), '%s: the stream works after its model is cleared', name);
  else
    expect_error(@() cebra.Stream(m), 'cebra:UNSUPPORTED', [], sprintf('%s: streaming a resampling model', name));
  end
end
m = cebra.Model('offset10-model', 7, 12, 3);
expect_error(@() transform(m, randn(20, 6)), 'cebra:SHAPE_MISMATCH');
expect_error(@() transform(m, randn(20, 7, 2)), 'cebra:INVALID_ARGUMENT', 'time x neurons');
expect_error(@() transform(m, randn(20, 7), 'BatchSize', -1), 'cebra:INVALID_ARGUMENT', 'BatchSize');
expect_error(@() transform(m, randn(20, 7), 'Pad', 3), 'cebra:INVALID_ARGUMENT', 'Pad');
s = cebra.Stream(m);
expect_error(@() push(s, randn(1, 6)), 'cebra:SHAPE_MISMATCH');
expect_error(@() cebra.Stream(42), 'cebra:INVALID_ARGUMENT');
end

% ---- callback models -------------------------------------------------------------------------

% The expected output of window_model: y(t, o, b) = scale * sum of the window of input channel
% mod(o-1, nin)+1 starting at t, plus o - 1 (as the C tests' callback).
function y = window_model(x, num_output, out_time, scale)
[time, nin, batch] = size(x);
window = time - out_time + 1;
y = zeros(out_time, num_output, batch);
for b = 1:batch
  for o = 1:num_output
    for t = 1:out_time
      y(t, o, b) = scale * sum(double(x(t:t + window - 1, mod(o - 1, nin) + 1, b))) + (o - 1);
    end
  end
end
end

function y = flaky_model(x, num_output, out_time)
global CEBRA_TEST_FAIL
if CEBRA_TEST_FAIL
  error('test:flaky', 'flaky model asked to fail');
end
y = window_model(x, num_output, out_time, 1);
end

function test_callbacks(env)
global CEBRA_TEST_FAIL
[~, registrations0] = cebra_mex('stats');
X = reshape((0:79) * 0.25 - 3, 10, 4, 2);
cebra.register('mx-window', @(x, k, t) window_model(x, k, t, 2), 2, 3);
names = cebra.getOptions();
check(strcmp(names{end}, 'mx-window') && numel(names) == 148, 'a registered function is listed last');
check(isequal(cebra.getOptions('mx-*'), {'mx-window'}), 'pattern finds it');
m = cebra.Model('mx-window', 4, 999, 2);
[l, r] = offset(m);
check(l == 2 && r == 3 && numInput(m) == 4 && numOutput(m) == 2, 'callback model offset and sizes');
[total, trainable] = numParameters(m);
check(total == 0 && trainable == 0, 'callback model has no parameters');
Y = forward(m, X);
want = window_model(single(X), 2, 6, 2);
check(isequal(size(Y), [6, 2, 2]) && close_to(Y, want, 1e-6, 1e-5), 'callback forward on a batch of 2');
Y1 = forward(m, X(1:5, :, 1));
check(isequal(size(Y1), [1, 2]) && close_to(Y1, window_model(single(X(1:5, :, 1)), 2, 1, 2), 1e-6, 1e-5), ...
      'receptive-field-sized input gives one step');
expect_error(@() forward(m, X(1:4, :, 1)), 'cebra:SHAPE_MISMATCH');
expect_error(@() cebra.register('mx-window', @(x) x, 0, 1), 'cebra:ALREADY_REGISTERED', 'mx-window');

% Function handles of one, two or three arguments.
cebra.register('mx-one-arg', @(x) x(2:end, 1:2, :), 1, 1);
y = forward(cebra.Model('mx-one-arg', 3, 1, 2), reshape(1:30, 10, 3));
check(isequal(y, reshape([2:10, 12:20], 9, 2)), 'a one-argument function handle');
cebra.unregister('mx-one-arg');

% Errors thrown by the function, or a result of the wrong size or type: CALLBACK_FAILED with the reason.
cebra.register('mx-flaky', @flaky_model, 0, 1);
flaky = cebra.Model('mx-flaky', 4, 1, 2);
CEBRA_TEST_FAIL = true;
expect_error(@() forward(flaky, X), 'cebra:CALLBACK_FAILED', 'flaky model asked to fail');
CEBRA_TEST_FAIL = false;
check(close_to(forward(flaky, X), window_model(single(X), 2, 10, 1), 1e-6, 1e-5), 'the same model works once the function succeeds');
cebra.register('mx-wrong-size', @(x, k, t) zeros(t + 1, k), 0, 1);
expect_error(@() forward(cebra.Model('mx-wrong-size', 4, 1, 2), X(:, :, 1)), 'cebra:CALLBACK_FAILED', 'expected outTime');
cebra.register('mx-wrong-type', @(x, k, t) repmat('a', t, k), 0, 1);
expect_error(@() forward(cebra.Model('mx-wrong-type', 4, 1, 2), X(:, :, 1)), 'cebra:CALLBACK_FAILED', 'real single or double');
cebra.unregister('mx-wrong-size');
cebra.unregister('mx-wrong-type');
check(numel(cebra.getOptions()) == 149, 'the registry works after failed callbacks');

% Override: new models get the new function, the old model keeps the old one.
cebra.register('mx-window', @(x, k, t) window_model(x, k, t, -1), 2, 3, 'Override', true);
m2 = cebra.Model('mx-window', 4, 1, 2);
check(close_to(forward(m2, X), window_model(single(X), 2, 6, -1), 1e-6, 1e-5), 'the override runs for new models');
check(close_to(forward(m, X), want, 1e-6, 1e-5), 'the old model keeps the old function');

% Lifetime: a registration's function handle is released once the name and all its models are gone.
cebra.unregister('mx-window');
check(~any(strcmp(cebra.getOptions(), 'mx-window')), 'unregistered name is gone from the listing');
expect_error(@() cebra.Model('mx-window', 4, 1, 2), 'cebra:UNKNOWN_NAME');
check(close_to(forward(m, X), want, 1e-6, 1e-5), 'a model outlives its unregistered name');
[~, registrations] = cebra_mex('stats');
check(registrations == registrations0 + 3, 'two mx-window registrations (old, override) and mx-flaky are alive: %d', registrations - registrations0);
clear m m2
[~, registrations] = cebra_mex('stats');
check(registrations == registrations0 + 1, 'mx-window functions released with their last models: %d', registrations - registrations0);
cebra.register('mx-legacy', @(x) x, 0, 1, 'Deprecated', true);
check(any(strcmp(cebra.getOptions(), 'mx-legacy')), 'a deprecated name is listed');
cebra.unregister('mx-legacy');
cebra.unregister('mx-flaky');
clear flaky
[~, registrations] = cebra_mex('stats');
check(registrations == registrations0, 'every registration released: %d left', registrations - registrations0);
check(numel(cebra.getOptions()) == 147, 'the listing is back to the 147 reference names');
expect_error(@() cebra.register('mx-bad', 5, 0, 1), 'cebra:INVALID_ARGUMENT', 'function handle');
expect_error(@() cebra.register('mx-bad', @(x) x, -1, 1), 'cebra:INVALID_ARGUMENT', 'offsetLeft');
expect_error(@() cebra.unregister('mx-no-such-name'), 'cebra:UNKNOWN_NAME');
end

% ---- handles ---------------------------------------------------------------------------------

function make_and_drop(count)
models = cell(1, count);
for i = 1:count
  models{i} = cebra.Model('offset1-model', 7, 12, 3);
end
end

function test_handles(env)
base = live_handles();
[~, ~, locked] = cebra_mex('stats');
check(base == 0 && ~locked, 'no live handles and no lock before: %d', base);
items = cell(1, 20);
for i = 1:10
  items{i} = cebra.Model('offset5-model', 7, 12, 3);
  items{10 + i} = cebra.Criterion('nce');
end
[handles, ~, locked] = cebra_mex('stats');
check(handles == base + 20 && locked, '20 live handles, mex locked: %d', handles);
clear items
check(live_handles() == base, 'clear releases every handle: %d left', live_handles() - base);
make_and_drop(5);
check(live_handles() == base, 'handles of a function''s variables are released on return');
[~, ~, locked] = cebra_mex('stats');
check(~locked, 'the mex is unlocked when nothing is alive');

% Stale, forged and wrong-kind ids are errors, never crashes.
m = cebra.Model('offset10-model', 7, 12, 3);
c = cebra.Criterion('infonce');
id = m.Id;
X = randn(12, 7);
expect_error(@() cebra_mex('model_forward', 123456, X), 'cebra:INVALID_ARGUMENT', 'forged', 'a forged id');
expect_error(@() cebra_mex('model_forward', id + 1048576, X), 'cebra:INVALID_ARGUMENT', 'stale', 'an id of a wrong generation');
expect_error(@() cebra_mex('model_forward', c.Id, X), 'cebra:INVALID_ARGUMENT', 'cebra.Criterion', 'a criterion id as a model');
expect_error(@() cebra_mex('model_forward', -1, X), 'cebra:INVALID_ARGUMENT', 'stale', 'a negative id');
expect_error(@() cebra_mex('model_forward', id + 0.5, X), 'cebra:INVALID_ARGUMENT', 'stale', 'a fractional id');
expect_error(@() cebra_mex('model_forward', NaN, X), 'cebra:INVALID_ARGUMENT', 'stale', 'a NaN id');
expect_error(@() cebra_mex('model_forward', [id id], X), 'cebra:INVALID_ARGUMENT', 'stale', 'a vector id');
expect_error(@() cebra_mex('model_forward', int64(id), X), 'cebra:INVALID_ARGUMENT', 'stale', 'an integer-class id');
expect_error(@() cebra_mex('model_forward', 'id', X), 'cebra:INVALID_ARGUMENT', 'stale', 'a text id');
check(cebra_mex('is_live', id), 'the model id is live');
% The mex stays loaded while handles live: clearing it keeps the model usable.
clear cebra_mex
check(isequal(size(forward(m, X)), [3, 3]), 'a model still works after `clear cebra_mex`');
delete(m);
check(~cebra_mex('is_live', id), 'delete frees the handle');
expect_error(@() cebra_mex('model_forward', id, X), 'cebra:INVALID_ARGUMENT', 'already freed', 'a freed id');
expect_error(@() cebra_mex('free', id), 'cebra:INVALID_ARGUMENT', 'already freed', 'a double free');
expect_error(@() forward(m, X), 'cebra:INVALID_ARGUMENT', [], 'a deleted cebra.Model');
m2 = cebra.Model('offset10-model', 7, 12, 3);
check(m2.Id ~= id, 'a reused slot gets a new id');
expect_error(@() cebra_mex('model_forward', id, X), 'cebra:INVALID_ARGUMENT', 'stale', 'the old id of a reused slot');
clear m m2 c
check(live_handles() == base, 'no handles left');
end

% ---- help texts ------------------------------------------------------------------------------

% ---- training ---------------------------------------------------------------------------------

function stop = record_step(r, limit)
global SOLVER_STEPS
SOLVER_STEPS(end + 1, :) = [r.step, r.totalSteps, r.loss, r.align, r.uniform, r.temperature];
stop = r.step >= limit;
end

function stop = refit_inside(s, X)
% A progress function that tries to use its own solver: refused, the fit goes on.
global SOLVER_INNER
try
  fit(s, X);
  SOLVER_INNER = 'no error';
catch err
  SOLVER_INNER = err.identifier;
end
stop = false;
end

function test_solver(env)
global SOLVER_STEPS SOLVER_INNER
T = 120;
N = 6;
latent = sin((0:T - 1)' * 0.07);
X = latent * ((1:N) - 3) + 0.05 * mod((0:T - 1)' * 3 + (1:N), 4);   % time x neurons
classes = int32(latent > 0);
args = {'model_architecture', 'offset10-model', 'num_hidden_units', 8, 'output_dimension', 3, ...
        'batch_size', 16, 'max_iterations', 3, 'seed', 5};
s = cebra.Solver(args{:});
check(~isFitted(s), 'a new solver is not fitted');
check(~isempty(strfind(options(s), 'seed=5')), 'options show the seed: %s', options(s));
% Fit with continuous labels and a progress function seeing every step.
SOLVER_STEPS = zeros(0, 6);
loss = fit(s, X, latent, 'Progress', @(r) record_step(r, 99));
check(isFitted(s), 'fitted after fit');
check(isequal(SOLVER_STEPS(:, 1)', 1:3) && all(SOLVER_STEPS(:, 2) == 3), 'progress saw steps 1..3 of 3');
H = history(s);
check(isequal(size(H.loss), [3 1]) && isequal(H.loss, loss) && isequal(H.loss, SOLVER_STEPS(:, 3)), ...
      'history.loss: the returned loss, the one the progress function saw');
check(isequal(H.align, SOLVER_STEPS(:, 4)) && isequal(H.uniform, SOLVER_STEPS(:, 5)) && ...
      isequal(H.temperature, SOLVER_STEPS(:, 6)), 'history: align, uniform, temperature as seen');
check(all(abs(H.loss - (H.align + H.uniform)) <= 1e-4 * (1 + abs(H.loss))), 'loss = align + uniform');
check(all(H.temperature == 1), 'constant temperature');
E = transform(s, X);
check(isequal(size(E), [T 3]) && isa(E, 'double') && all(isfinite(E(:))), 'transform: T x 3 double');
Es = transform(s, single(X));
check(isa(Es, 'single') && isequal(double(Es), E), 'transform of single data: the same, as single');
% Same seed, same fit (single data, labels as a row vector's column).
again = cebra.Solver(args{:});
fit(again, single(X), single(latent));
check(isequal(history(again).loss, H.loss) && isequal(transform(again, X), E), 'same seed, same fit');
% The model: a copy of the weights for transform and streaming.
m = model(s);
check(numInput(m) == N && numOutput(m) == 3, 'the model of the solver: N inputs, 3 outputs');
check(isequal(transform(m, X), E), 'model transform equals the solver transform');
% Save and load.
path = fullfile(env.tmp, 'solver.safetensors');
save(s, path);
loaded = cebra.Solver.fromFile(path);
check(isFitted(loaded) && strcmp(options(loaded), options(s)), 'loaded: fitted, same options');
check(isequal(history(loaded), H) && isequal(transform(loaded, X), E), 'loaded: same history and embedding');
check(isequal(transform(cebra.Model.fromFile(path), X), E), 'the solver file is a model file');
% Discrete labels and an early stop; Verbose prints each step.
SOLVER_STEPS = zeros(0, 6);
out = evalc('fit(s, X, classes, ''Progress'', @(r) record_step(r, 2), ''Verbose'', true);');
check(size(SOLVER_STEPS, 1) == 2 && numel(history(s).loss) == 2, 'returning true stops after step 2');
check(~isempty(strfind(out, 'step 2/3')), 'Verbose prints the steps');
% Mixed labels (continuous and discrete) and logical discrete labels.
fit(s, X, latent, latent > 0);
check(numel(history(s).loss) == 3, 'mixed labels: 3 steps');
% A progress function that fails: CALLBACK_FAILED with its message, the solver keeps one step.
expect_error(@() fit(s, X, latent, 'Progress', @(r) error('my:id', 'enough')), 'cebra:CALLBACK_FAILED', 'enough');
check(numel(history(s).loss) == 1, 'a failing progress function stops after its step');
% A progress function using its own solver is refused (not a deadlock); the fit completes.
SOLVER_INNER = '';
fit(s, X, latent, 'Progress', @(r) refit_inside(s, X));
check(strcmp(SOLVER_INNER, 'cebra:UNSUPPORTED') && numel(history(s).loss) == 3, ...
      'refitting from the progress function: %s', SOLVER_INNER);
% Errors.
u = cebra.Solver(args{:});
expect_error(@() cebra.Solver('learning_rte', 1), 'cebra:INVALID_ARGUMENT', 'learning_rte');
expect_error(@() cebra.Solver('model_architecture', 'offset11-model'), 'cebra:UNKNOWN_NAME');
if ~cebra.cudaIsAvailable()
  expect_error(@() cebra.Solver('device', 'cuda'), 'cebra:UNSUPPORTED', 'CUDA');
end
expect_error(@() transform(u, X), 'cebra:INVALID_ARGUMENT', 'not fitted');
expect_error(@() history(u), 'cebra:INVALID_ARGUMENT', 'not fitted');
expect_error(@() model(u), 'cebra:INVALID_ARGUMENT', 'not fitted');
expect_error(@() save(u, fullfile(env.tmp, 'u.safetensors')), 'cebra:INVALID_ARGUMENT', 'not fitted');
expect_error(@() fit(u, X(1:5, :)), 'cebra:SHAPE_MISMATCH', 'receptive field');
expect_error(@() fit(u, X, latent(1:end - 1)), 'cebra:SHAPE_MISMATCH', 'continuous');
expect_error(@() fit(u, X, classes(1:end - 1)), 'cebra:SHAPE_MISMATCH', 'discrete');
expect_error(@() cebra_mex('solver_fit', u.Id, X, [], latent + 0.5, []), 'cebra:INVALID_ARGUMENT', 'integers');
expect_error(@() fit(u, X, int32(-classes)), 'cebra:INVALID_ARGUMENT', 'non-negative');
expect_error(@() fit(u, X, 'Progress', 5), 'cebra:INVALID_ARGUMENT', 'Progress');
expect_error(@() fit(u, X, {1}), 'cebra:INVALID_ARGUMENT');
expect_error(@() transform(s, X(:, 1:N - 1)), 'cebra:SHAPE_MISMATCH', 'neurons');
expect_error(@() cebra.Solver.fromFile(fullfile(env.fixtures, 'models', 'offset10-model.safetensors')), ...
             'cebra:FORMAT', 'not a saved solver');
expect_error(@() cebra_mex('solver_fit', m.Id, X, [], [], []), 'cebra:INVALID_ARGUMENT', 'cebra.Solver');
check(~isFitted(u), 'failed fits leave the solver unfitted');
% The classifier head size.
c = cebra.Model('supervised10-model', 7, 12, 3);
check(labelNum(c) == 0, 'no head: labelNum 0');
setOutputNum(c, 4);
check(labelNum(c) == 4, 'labelNum after setOutputNum(4)');
expect_error(@() labelNum(m), 'cebra:UNSUPPORTED', 'not a classifier');
clear s again m loaded u c
end

function test_help(env)
public = {'cebra.Model', 'cebra.Solver', 'cebra.Criterion', 'cebra.Stream', 'cebra.getOptions', 'cebra.version', 'cebra.abiVersion', ...
          'cebra.manualSeed', 'cebra.setNumThreads', 'cebra.cudaIsAvailable', 'cebra.register', ...
          'cebra.unregister', 'cebra.dotSimilarity', 'cebra.euclideanSimilarity', 'cebra.infonce'};
for i = 1:numel(public)
  help_text = evalc(['help ' public{i}]);
  [~, short] = fileparts(strrep(public{i}, '.', filesep));
  check(~isempty(strfind(lower(help_text), lower(short))) && numel(help_text) > 80, 'help %s has a text', public{i});
end
help_text = evalc('help cebra.Model');
check(~isempty(strfind(help_text, 'Example')) && ~isempty(strfind(help_text, 'cebra.Model(')), 'help cebra.Model shows usage and an example');
end
