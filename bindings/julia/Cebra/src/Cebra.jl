"""
    Cebra

CEBRA encoders and contrastive criterions from libcebra (a C library on libtorch), with Julia
arrays. Array conventions: Julia stores arrays column by column, so a C array of shape
`(batch, channels, time)` is the Julia array of size `(time, channels, batch)` (same bytes, no copy or
transpose), and a C matrix `(n, d)` of `n` samples is the Julia matrix `d × n` (one sample a column).

A whole recording is a `time × neurons` matrix (`transform`, `Stream`), as Julia stores it (the C
side reads it column-major, without a transpose).

The raw C functions are in the submodule `Cebra.LibCebra`, generated from `cebra.h`.
"""
module Cebra

include("LibCebra.jl")
using .LibCebra
const L = LibCebra

export CebraError, Model, Criterion, forward, backward, load!, save, offset, load_model, get_options,
       criterion_options, register, unregister, num_input, num_output, resample_factor, num_parameters,
       output_time, set_training!, set_output_num!, forward_classifier, temperature, dot_similarity,
       euclidean_similarity, infonce, manual_seed!, set_num_threads!, cuda_is_available, transform, Stream,
       lookahead, reset!, label_num, Solver, fit!, loss_history, history, is_fitted, solver_options, load_solver

# Functions of cebra.h that the high-level API does not wrap. `make julia-check` reads this list (the
# lines "#   not wrapped: <function> -- <reason>") and fails when a header function is neither used below
# nor listed here, or when a listed one is not in the header.
#   (none: every function of cebra.h is wrapped)

# ---- errors ---------------------------------------------------------------------------------------

"""
    CebraError(status, name, message) <: Exception

A libcebra call that failed: `status` is the `CebraStatus` number, `name` its name (such as
`"CEBRA_STATUS_SHAPE_MISMATCH"`) and `message` the library's explanation.
"""
struct CebraError <: Exception
    status::UInt32
    name::String
    message::String
end

Base.showerror(io::IO, e::CebraError) = print(io, "CebraError: ", e.name, ": ", e.message)

status_name(status::Integer) = unsafe_string(L.cebra_status_name(UInt32(status)))

# The message of a failing Julia callback is kept in the task-local storage under this key (the C call
# runs its callbacks in the calling task) and added to the CALLBACK_FAILED error.
const _CALLBACK_ERROR_KEY = :libcebra_callback_error

"""
    check(status)

Throws the `CebraError` of a status that is not `CEBRA_STATUS_OK`, with the thread's last error message.
"""
function check(status::UInt32)
    status == L.CEBRA_STATUS_OK && return nothing
    message = unsafe_string(L.cebra_last_error())
    storage = task_local_storage()
    if haskey(storage, _CALLBACK_ERROR_KEY)
        callback_error = pop!(storage, _CALLBACK_ERROR_KEY)
        if status == L.CEBRA_STATUS_CALLBACK_FAILED
            message *= " (Julia callback: " * callback_error * ")"
        end
    end
    throw(CebraError(status, status_name(status), message))
end

# ---- strings and options --------------------------------------------------------------------------

# A string for a `const char *` argument; NUL bytes inside would cut it short in C.
function cstring(s::AbstractString)
    str = String(s)
    occursin('\0', str) && throw(ArgumentError("string contains a NUL byte: $(repr(str))"))
    return str
end
cstring(::Nothing) = C_NULL

option_value(v::Bool) = v ? "true" : "false"
option_value(v::Real) = string(v)
option_value(v::AbstractString) = String(v)
option_value(v::Symbol) = String(v)

"""
    options_string(kwargs) -> String

Keyword arguments as a libcebra option string, `key=value;key=value` (`""` when there are none).
"""
function options_string(kwargs)
    parts = String[]
    for (key, value) in pairs(kwargs)
        text = option_value(value)
        any(c -> c in (';', '=', '\0'), text) && throw(ArgumentError("option $key = $(repr(text)): ';', '=' and NUL are not allowed"))
        push!(parts, string(key, "=", text))
    end
    return join(parts, ";")
end

# A Float32 array with the memory layout C reads: the array itself when it already is one.
dense32(x::Array{Float32}) = x
dense32(x::AbstractArray{<:Real}) = convert(Array{Float32}, x)

# ---- version and runtime --------------------------------------------------------------------------

"""The library version, e.g. `v"0.1.0"`."""
version() = VersionNumber(unsafe_string(L.cebra_version()))

"""The binary interface version of the loaded library (`LibCebra.CEBRA_ABI_VERSION` of the header this
package was generated from must equal it)."""
abi_version() = Int(L.cebra_abi_version())

"""Seeds the generator that model initialisation and dropout draw from."""
manual_seed!(seed::Integer) = check(L.cebra_manual_seed(UInt64(seed)))

"""Sets the number of threads libtorch uses inside one operation (at least 1)."""
set_num_threads!(n::Integer) = check(L.cebra_set_num_threads(Int32(n)))

"""Whether a CUDA device can be used."""
cuda_is_available() = L.cebra_cuda_is_available() != 0

"""Diagnostics: an internal error of the library, caught and reported; always throws a `CebraError`
with status `CEBRA_STATUS_PANIC`."""
debug_panic() = check(L.cebra_debug_panic())

# ---- registry -------------------------------------------------------------------------------------

# Calls `query(buf, buf_len, needed)` (a cebra_*_get_options function) twice: size, then the text.
function _name_list(query)
    needed = Ref{Csize_t}(0)
    check(query(C_NULL, Csize_t(0), needed))
    buf = Vector{UInt8}(undef, needed[])
    check(query(buf, Csize_t(length(buf)), needed))
    text = GC.@preserve buf unsafe_string(pointer(buf))
    return isempty(text) ? String[] : split(text, '\n') .|> String
end

"""
    get_options(pattern = nothing; limit = 0, expand_parametrized = true) -> Vector{String}

Registered model names matching the glob `pattern` (`*`, `?`, `[seq]`; `nothing` = all), in
registration order, at most `limit` of them (0 = no limit). With `expand_parametrized = false` each
parametrized family is listed once.
"""
function get_options(pattern::Union{AbstractString,Nothing} = nothing; limit::Integer = 0,
                     expand_parametrized::Bool = true)
    limit >= 0 || throw(ArgumentError("limit must be >= 0, got $limit"))
    p = cstring(pattern)
    return _name_list((buf, len, needed) -> L.cebra_get_options(p, Csize_t(limit), UInt8(expand_parametrized), buf, len, needed))
end

"""
    criterion_options(pattern = nothing; limit = 0) -> Vector{String}

Criterion names matching `pattern`, like `get_options`.
"""
function criterion_options(pattern::Union{AbstractString,Nothing} = nothing; limit::Integer = 0)
    limit >= 0 || throw(ArgumentError("limit must be >= 0, got $limit"))
    p = cstring(pattern)
    return _name_list((buf, len, needed) -> L.cebra_criterion_get_options(p, Csize_t(limit), buf, len, needed))
end

"""
    unregister(name)

Removes a registered model name (a reference model or a callback model); models built from it keep
working.
"""
function unregister(name::AbstractString)
    check(L.cebra_unregister(cstring(name)))
    _drop_freed_registrations()  # free_user_data ran during the call if no model of it is alive
    return nothing
end

# ---- callback models ------------------------------------------------------------------------------

# One registration of a Julia function. libcebra gets a pointer to it as user_data; the object is
# rooted in _REGISTRATIONS until libcebra calls free_user_data (after unregistering and freeing the
# last model built from it). The free callback only sets `freed` (it may run inside a finalizer, where
# taking a lock could deadlock); rooted objects with `freed` set are dropped at the next registration.
mutable struct Registration
    f::Any
    @atomic freed::Bool
end

const _REGISTRATIONS = Set{Registration}()
const _REGISTRATIONS_LOCK = ReentrantLock()
const _FORWARD_FN = Ref{Ptr{Cvoid}}(C_NULL)
const _FREE_FN = Ref{Ptr{Cvoid}}(C_NULL)
const _PROGRESS_FN = Ref{Ptr{Cvoid}}(C_NULL)

function _drop_freed_registrations()
    lock(() -> filter!(r -> !(@atomic r.freed), _REGISTRATIONS), _REGISTRATIONS_LOCK)
    return nothing
end

function _forward_callback(user_data::Ptr{Cvoid}, input::Ptr{Cfloat}, batch::Int64, num_input::Int64,
                           time::Int64, output::Ptr{Cfloat}, num_output::Int64, out_time::Int64)::Int32
    try
        reg = unsafe_pointer_to_objref(user_data)::Registration
        # The input is the library's memory, valid during this call only: the function gets a copy.
        x = copy(unsafe_wrap(Array, input, (Int(time), Int(num_input), Int(batch))))
        y = reg.f(x)
        want = (Int(out_time), Int(num_output), Int(batch))
        size(y) == want || throw(DimensionMismatch("the callback returned size $(size(y)), expected $want"))
        copyto!(unsafe_wrap(Array, output, want), y)
        return Int32(0)
    catch err
        task_local_storage(_CALLBACK_ERROR_KEY, sprint(showerror, err))
        return Int32(-1)
    end
end

function _free_callback(user_data::Ptr{Cvoid})::Cvoid
    reg = unsafe_pointer_to_objref(user_data)::Registration
    @atomic reg.freed = true
    return nothing
end

function __init__()
    # C function pointers are made at load time (they cannot be precompiled).
    _FORWARD_FN[] = @cfunction(_forward_callback, Int32,
                               (Ptr{Cvoid}, Ptr{Cfloat}, Int64, Int64, Int64, Ptr{Cfloat}, Int64, Int64))
    _FREE_FN[] = @cfunction(_free_callback, Cvoid, (Ptr{Cvoid},))
    _PROGRESS_FN[] = @cfunction(_progress_callback, Int32, (Ptr{Cvoid}, Int64, Int64, Cdouble, Cdouble, Cdouble, Cdouble))
    return nothing
end

"""
    register(name, f, left, right; override = false, deprecated = false)

Registers the Julia function `f` as the model `name`: `Model(name, n, u, o)` then gives a model
whose forward calls `f(x)` with `x` of size `(time, n, batch)` (Float32), and `f` returns an array of
size `(time - left - right + 1, o, batch)`. `f` stays alive while the name is registered or a model
built from it exists. An exception in `f` makes the forward throw a `CebraError` with status
`CEBRA_STATUS_CALLBACK_FAILED`. `override` replaces an existing name; `deprecated` allows a second
name for the same model.
"""
function register(name::AbstractString, f, left::Integer, right::Integer; override::Bool = false,
                  deprecated::Bool = false)
    flags = (override ? L.CEBRA_REGISTER_OVERRIDE : UInt32(0)) | (deprecated ? L.CEBRA_REGISTER_DEPRECATED : UInt32(0))
    reg = Registration(f, false)
    _drop_freed_registrations()
    lock(() -> push!(_REGISTRATIONS, reg), _REGISTRATIONS_LOCK)
    status = GC.@preserve reg L.cebra_register_callback(cstring(name), Int64(left), Int64(right), _FORWARD_FN[],
                                                        pointer_from_objref(reg), _FREE_FN[], flags)
    if status != L.CEBRA_STATUS_OK
        # A failed registration does not call free_user_data: drop the object here.
        lock(() -> delete!(_REGISTRATIONS, reg), _REGISTRATIONS_LOCK)
        check(status)
    end
    return nothing
end

# ---- models ---------------------------------------------------------------------------------------

"""
    Model(name, num_neurons, num_units, num_output; kwargs...)

The registered model `name` (see `get_options`), freshly initialised (seeded by `manual_seed!`);
keyword arguments are the model's options (`normalize = false`, `dropout = 0.1`, ...). The handle is
freed by `close(model)` or by the garbage collector.
"""
mutable struct Model
    ptr::Ptr{L.CebraModel}

    function Model(ptr::Ptr{L.CebraModel})
        model = new(ptr)
        finalizer(close, model)
        return model
    end
end

function Model(name::AbstractString, num_neurons::Integer, num_units::Integer, num_output::Integer; kwargs...)
    out = Ref{Ptr{L.CebraModel}}(C_NULL)
    check(L.cebra_model_init(cstring(name), Int64(num_neurons), Int64(num_units), Int64(num_output),
                             options_string(kwargs), out))
    return Model(out[])
end

"""
    load_model(path) -> Model

Builds the model a self-describing `.safetensors` file (written by `save`) records, with its weights.
"""
function load_model(path::AbstractString)
    out = Ref{Ptr{L.CebraModel}}(C_NULL)
    check(L.cebra_model_load_file(cstring(path), out))
    return Model(out[])
end

"""Frees the model's handle now (later calls on it throw an `ArgumentError`); repeated calls are fine."""
function Base.close(model::Model)
    ptr = model.ptr
    model.ptr = C_NULL
    L.cebra_model_free(ptr)
    return nothing
end

# Passing a Model to a ccall roots it for the call and passes its handle.
function Base.unsafe_convert(::Type{Ptr{L.CebraModel}}, model::Model)
    model.ptr == C_NULL && throw(ArgumentError("the model is closed"))
    return model.ptr
end

function _int_query(f, model)
    out = Ref{Int64}(0)
    check(f(model, out))
    return Int(out[])
end

"""`(left, right)`: `left + right` input steps make one output step."""
function offset(model::Model)
    left, right = Ref{Int64}(0), Ref{Int64}(0)
    check(L.cebra_model_get_offset(model, left, right))
    return (Int(left[]), Int(right[]))
end

"""Input channels (neurons)."""
num_input(model::Model) = _int_query(L.cebra_model_num_input, model)
"""Output features."""
num_output(model::Model) = _int_query(L.cebra_model_num_output, model)
"""Time downsampling factor (1 for models that do not resample)."""
resample_factor(model::Model) = _int_query(L.cebra_model_resample_factor, model)

"""`(total = ..., trainable = ...)` parameter counts; a shared tensor counts once."""
function num_parameters(model::Model)
    total, trainable = Ref{Int64}(0), Ref{Int64}(0)
    check(L.cebra_model_num_parameters(model, total, trainable))
    return (total = Int(total[]), trainable = Int(trainable[]))
end

"""Output steps `forward` gives for an input of `time` steps."""
function output_time(model::Model, time::Integer)
    out = Ref{Int64}(0)
    check(L.cebra_model_output_time(model, Int64(time), out))
    return Int(out[])
end

"""Dropout on (`true`) or off (the default)."""
set_training!(model::Model, training::Bool) = check(L.cebra_model_set_training(model, UInt8(training)))

"""
    set_output_num!(model, label_num; override = false)

Creates the classifier head (`label_num` classes) of a classifier model (`supervised*`).
"""
function set_output_num!(model::Model, label_num::Integer; override::Bool = false)
    check(L.cebra_model_set_output_num(model, Int64(label_num), UInt8(override)))
    return model
end

"""
    label_num(model) -> Int

The size of a classifier model's head (0 before `set_output_num!`); a `CebraError`
(`CEBRA_STATUS_UNSUPPORTED`) for a model that is not a classifier.
"""
label_num(model::Model) = _int_query(L.cebra_model_label_num, model)

"""
    forward(model, x::AbstractArray{<:Real,3}) -> Array{Float32,3}
    forward(model, x::AbstractMatrix{<:Real}) -> Matrix{Float32}

Runs the model (no autograd). `x` is `(time, num_input, batch)` — the C layout `(batch, num_input,
time)` — and the result `(out_time, num_output, batch)`. A matrix `(time, num_input)` is one batch
element and gives `(out_time, num_output)`.
"""
function forward(model::Model, x::AbstractArray{<:Real,3})
    input = dense32(x)
    time, channels, batch = size(input)
    steps = output_time(model, time)
    output = Array{Float32,3}(undef, steps, num_output(model), batch)
    out_time = Ref{Int64}(0)
    check(L.cebra_model_forward(model, input, Int64(batch), Int64(channels), Int64(time), output,
                                Csize_t(length(output)), out_time))
    out_time[] == steps || error("libcebra gave $(out_time[]) output steps, expected $steps")
    return output
end

function forward(model::Model, x::AbstractMatrix{<:Real})
    y = forward(model, reshape(dense32(x), size(x, 1), size(x, 2), 1))
    return reshape(y, size(y, 1), size(y, 2))
end

"""
    forward_classifier(model, x; label_num = label_num(model)) -> (features, prediction)

The features `(num_output, batch)` and class scores `(label_num, batch)` of a classifier model with
a head, for `x` of size `(time, num_input, batch)` with exactly one output step. `label_num` is the
head's size, as the library reports it.
"""
function forward_classifier(model::Model, x::AbstractArray{<:Real,3}; label_num::Integer = Cebra.label_num(model))
    label_num > 0 || throw(ArgumentError("the classifier head is not initialised: call set_output_num!"))
    input = dense32(x)
    time, channels, batch = size(input)
    features = Matrix{Float32}(undef, num_output(model), batch)
    prediction = Matrix{Float32}(undef, label_num, batch)
    check(L.cebra_model_forward_classifier(model, input, Int64(batch), Int64(channels), Int64(time),
                                           features, Csize_t(length(features)), prediction,
                                           Csize_t(length(prediction))))
    return (features, prediction)
end

"""
    load!(model, path) -> model

Loads weights from a `.safetensors` file named by the reference `state_dict` keys; on error the model
is unchanged.
"""
function load!(model::Model, path::AbstractString)
    check(L.cebra_model_load(model, cstring(path)))
    return model
end

"""
    save(model, path)

Saves the weights with the architecture in the metadata (`load_model` rebuilds the model; Python's
`safetensors.torch.load_file` reads the weights).
"""
save(model::Model, path::AbstractString) = check(L.cebra_model_save(model, cstring(path)))

# ---- whole recordings and streaming -------------------------------------------------------------

"""
    transform(model, X::AbstractMatrix{<:Real}; pad = true, batch_size = 0) -> Matrix{Float32}

Embeds the whole recording `X` (`time × neurons`) as the reference `CEBRA.transform` does and returns
the `time × num_output` embedding. With `pad = true` (the reference default) the edges are repeated so
that every input step has an output row; without, there is one row per full receptive field
(`time - left - right + 1`). `batch_size = 0` is one pass, otherwise chunks of that many steps (same
rows, memory bounded by the chunk). Resampling models give fewer rows. `X` is passed as it is when it
is a `Matrix{Float32}`, otherwise converted once.
"""
function transform(model::Model, X::AbstractMatrix{<:Real}; pad::Bool = true, batch_size::Integer = 0)
    data = dense32(X)
    timesteps, neurons = size(data)
    outputs = num_output(model)
    # No call gives the row count beforehand; it never exceeds `timesteps` (padding gives exactly that
    # many, no padding or resampling fewer), and the rows' values come first in `out`.
    out = Matrix{Float32}(undef, timesteps, outputs)
    rows = Ref{Int64}(0)
    check(L.cebra_model_transform(model, data, Int64(timesteps), Int64(neurons), L.CEBRA_LAYOUT_COL_MAJOR,
                                  Int64(batch_size), UInt8(pad), out, Csize_t(length(out)), rows))
    r = Int(rows[])
    return r == timesteps ? out : reshape(vec(out)[1:r*outputs], r, outputs)
end

"""
    Stream(model)

Embeds a recording one time step at a time: `push!(stream, sample)` with the `num_input(model)`
values of one step returns `nothing` until a receptive field of steps (`left + right`) was pushed,
then the embedding (`Vector{Float32}` of `num_output(model)` values) of the step `lookahead(stream)`
steps before the newest, equal to that row of `transform(model, X)`. `reset!` starts a new recording.
The stream keeps its model alive (closing the model first is fine); it is freed by `close(stream)` or
the garbage collector. Resampling models cannot stream (`CEBRA_STATUS_UNSUPPORTED`).
"""
mutable struct Stream
    ptr::Ptr{L.CebraStream}
    num_input::Int
    num_output::Int

    function Stream(model::Model)
        n, o = num_input(model), num_output(model)
        out = Ref{Ptr{L.CebraStream}}(C_NULL)
        check(L.cebra_stream_new(model, out))
        stream = new(out[], n, o)
        finalizer(close, stream)
        return stream
    end
end

"""Frees the stream's handle now (later calls on it throw an `ArgumentError`); repeated calls are fine."""
function Base.close(stream::Stream)
    ptr = stream.ptr
    stream.ptr = C_NULL
    L.cebra_stream_free(ptr)
    return nothing
end

function Base.unsafe_convert(::Type{Ptr{L.CebraStream}}, stream::Stream)
    stream.ptr == C_NULL && throw(ArgumentError("the stream is closed"))
    return stream.ptr
end

"""
    push!(stream, sample::AbstractVector{<:Real}) -> Union{Vector{Float32},Nothing}

Feeds one time step; returns the embedding of the step `lookahead(stream)` before it, or `nothing`
while fewer than a receptive field of steps were pushed.
"""
function Base.push!(stream::Stream, sample::AbstractVector{<:Real})
    x = dense32(sample)
    embedding = Vector{Float32}(undef, stream.num_output)
    ready = Ref{UInt8}(0)
    check(L.cebra_stream_push(stream, x, Int64(length(x)), embedding, Csize_t(length(embedding)), ready))
    return ready[] == 0 ? nothing : embedding
end

"""Steps between the newest pushed sample and the step whose embedding `push!` returns (`right - 1`
of the model's offset)."""
function lookahead(stream::Stream)
    steps = Ref{Int64}(0)
    check(L.cebra_stream_lookahead(stream, steps))
    return Int(steps[])
end

"""Forgets every pushed sample: the next `push!` starts a new recording."""
function reset!(stream::Stream)
    check(L.cebra_stream_reset(stream))
    return stream
end

# ---- training -------------------------------------------------------------------------------------

"""
    Solver(; kwargs...)

CEBRA training, the reference's `cebra.CEBRA(...)`: keyword arguments are its options, same names and
defaults (`model_architecture = "offset10-model"`, `batch_size = 512` (0: full batch),
`learning_rate = 3e-4`, `temperature = 1`, `temperature_mode = "auto"`, `distance = "cosine"`,
`conditional = "time_delta"`, `time_offsets = 10`, `max_iterations = 1000`, `num_hidden_units = 32`,
`output_dimension = 8`, `hybrid = false`, `device = "cpu"`, `seed = 42`, ...). The seed is drawn at random
when not given (`solver_options` shows it). Then `fit!`, `transform`, `loss_history`, `history`,
`Model(solver)`, `save`, `load_solver`. Freed by `close(solver)` or the garbage collector.
"""
mutable struct Solver
    ptr::Ptr{L.CebraSolver}
    function Solver(ptr::Ptr{L.CebraSolver})
        solver = new(ptr)
        finalizer(close, solver)
        return solver
    end
end
function Solver(; kwargs...)
    out = Ref{Ptr{L.CebraSolver}}(C_NULL)
    check(L.cebra_solver_new(options_string(kwargs), out))
    return Solver(out[])
end

"""Frees the solver's handle now (later calls on it throw an `ArgumentError`); repeated calls are fine."""
function Base.close(solver::Solver)
    ptr = solver.ptr
    solver.ptr = C_NULL
    L.cebra_solver_free(ptr)
    return nothing
end
function Base.unsafe_convert(::Type{Ptr{L.CebraSolver}}, solver::Solver)
    solver.ptr == C_NULL && throw(ArgumentError("the solver is closed"))
    return solver.ptr
end

# What the progress callback needs: the Julia function, and what it threw (rethrown by fit!).
mutable struct _Progress
    f::Any
    error::Any
end

function _progress_callback(user_data::Ptr{Cvoid}, step::Int64, total::Int64, loss::Cdouble, align::Cdouble,
                            uniform::Cdouble, temperature::Cdouble)::Int32
    state = unsafe_pointer_to_objref(user_data)::_Progress
    try
        answer = state.f((step = Int(step), total_steps = Int(total), loss = loss, align = align,
                          uniform = uniform, temperature = temperature))
        return answer === false ? Int32(1) : Int32(0)
    catch err
        state.error = err
        return Int32(1)
    end
end

"""
    fit!(solver, X; continuous = nothing, discrete = nothing, progress = nothing) -> solver

Trains from scratch on the recording `X` (`time × neurons`). `continuous`: labels, a vector (one per
step) or a `time × dims` matrix; `discrete`: one non-negative integer label per step; both select the
sampling as in the reference. `progress(record)` is called after every step with a named tuple
`(step, total_steps, loss, align, uniform, temperature)`; returning `false` stops the fit early (the
solver keeps what it learned). An exception thrown by `progress` stops the fit and is rethrown.
"""
function fit!(solver::Solver, X::AbstractMatrix{<:Real}; continuous::Union{Nothing,AbstractVecOrMat{<:Real}} = nothing,
              discrete::Union{Nothing,AbstractVector{<:Integer}} = nothing, progress = nothing)
    data = dense32(X)
    timesteps, neurons = size(data)
    labels = continuous === nothing ? nothing : dense32(continuous)
    if labels !== nothing
        size(labels, 1) == timesteps ||
            throw(DimensionMismatch("continuous has $(size(labels, 1)) rows for $timesteps time steps"))
    end
    classes = discrete === nothing ? nothing : convert(Vector{Int64}, discrete)
    if classes !== nothing
        length(classes) == timesteps ||
            throw(DimensionMismatch("discrete has $(length(classes)) labels for $timesteps time steps"))
    end
    state = _Progress(progress, nothing)
    callback = progress === nothing ? C_NULL : _PROGRESS_FN[]
    GC.@preserve data labels classes state begin
        check(L.cebra_solver_fit(solver, data, Int64(timesteps), Int64(neurons), L.CEBRA_LAYOUT_COL_MAJOR,
                                 labels === nothing ? Ptr{Cfloat}(C_NULL) : pointer(labels),
                                 Int64(labels === nothing ? 0 : size(labels, 2)),
                                 classes === nothing ? Ptr{Int64}(C_NULL) : pointer(classes),
                                 callback, pointer_from_objref(state)))
    end
    state.error === nothing || throw(state.error)
    return solver
end

"""
    transform(solver, X) -> Matrix{Float32}

The `time × output_dimension` embedding of the recording `X` (`time × neurons`) by the trained model,
padded as the reference's `transform` (one row per step).
"""
function transform(solver::Solver, X::AbstractMatrix{<:Real})
    data = dense32(X)
    timesteps, neurons = size(data)
    outputs = parse(Int, match(r"(?:^|;)output_dimension=(\d+)", solver_options(solver))[1])
    out = Matrix{Float32}(undef, timesteps, outputs)
    rows = Ref{Int64}(0)
    check(L.cebra_solver_transform(solver, data, Int64(timesteps), Int64(neurons), L.CEBRA_LAYOUT_COL_MAJOR, out,
                                   Csize_t(length(out)), rows))
    Int(rows[]) == timesteps || error("libcebra gave $(rows[]) rows, expected $timesteps")
    return out
end

# A per-step record: size query, then the values.
function _doubles(query)
    count = Ref{Csize_t}(0)
    check(query(Ptr{Cdouble}(C_NULL), Csize_t(0), count))
    values = Vector{Float64}(undef, count[])
    isempty(values) || check(query(values, Csize_t(length(values)), count))
    return values
end

"""The loss of every step of the last fit."""
loss_history(solver::Solver) = _doubles((out, len, count) -> L.cebra_solver_loss_history(solver, out, len, count))

"""
    history(solver) -> (loss, align, uniform, temperature)

Every per-step record of the last fit, as vectors of one value per step.
"""
function history(solver::Solver)
    field(f) = _doubles((out, len, count) -> L.cebra_solver_history(solver, f, out, len, count))
    return (loss = field(L.CEBRA_HISTORY_LOSS), align = field(L.CEBRA_HISTORY_ALIGN),
            uniform = field(L.CEBRA_HISTORY_UNIFORM), temperature = field(L.CEBRA_HISTORY_TEMPERATURE))
end

"""Whether the solver holds a trained model (after `fit!` or `load_solver`)."""
function is_fitted(solver::Solver)
    out = Ref{UInt8}(0)
    check(L.cebra_solver_is_fitted(solver, out))
    return out[] != 0
end

"""Every option in use, `"key=value;..."`, the seed included (drawn when it was not given)."""
function solver_options(solver::Solver)
    needed = Ref{Csize_t}(0)
    check(L.cebra_solver_options(solver, Ptr{UInt8}(C_NULL), Csize_t(0), needed))
    buf = Vector{UInt8}(undef, needed[])
    check(L.cebra_solver_options(solver, buf, Csize_t(length(buf)), needed))
    return GC.@preserve buf unsafe_string(pointer(buf))
end

"""
    Model(solver) -> Model

A model holding a copy of the trained weights (for `transform`, `Stream`, `save`).
"""
function Model(solver::Solver)
    out = Ref{Ptr{L.CebraModel}}(C_NULL)
    check(L.cebra_solver_model(solver, out))
    return Model(out[])
end

"""
    save(solver, path)

Saves the fitted solver (weights, criterion, options with the seed, per-step record) in one
`.safetensors` file, which `load_solver` reads back and `load_model` reads as a model.
"""
save(solver::Solver, path::AbstractString) = check(L.cebra_solver_save(solver, cstring(path)))

"""
    load_solver(path) -> Solver

A fitted solver saved by `save(solver, path)`.
"""
function load_solver(path::AbstractString)
    out = Ref{Ptr{L.CebraSolver}}(C_NULL)
    check(L.cebra_solver_load(cstring(path), out))
    return Solver(out[])
end

# ---- criterions -----------------------------------------------------------------------------------

"""
    Criterion(name; kwargs...)

A contrastive criterion (see `criterion_options`): `fixed-cosine-infonce`, `learnable-euclidean-infonce`,
`nce`, ...; options as keyword arguments (`temperature = 0.5`, `min_temperature = 0.1`, ...). Freed by
`close` or the garbage collector.
"""
mutable struct Criterion
    ptr::Ptr{L.CebraCriterion}
    name::String

    function Criterion(name::AbstractString; kwargs...)
        out = Ref{Ptr{L.CebraCriterion}}(C_NULL)
        check(L.cebra_criterion_init(cstring(name), options_string(kwargs), out))
        criterion = new(out[], String(name))
        finalizer(close, criterion)
        return criterion
    end
end

function Base.close(criterion::Criterion)
    ptr = criterion.ptr
    criterion.ptr = C_NULL
    L.cebra_criterion_free(ptr)
    return nothing
end

function Base.unsafe_convert(::Type{Ptr{L.CebraCriterion}}, criterion::Criterion)
    criterion.ptr == C_NULL && throw(ArgumentError("the criterion is closed"))
    return criterion.ptr
end

"""The current temperature."""
function temperature(criterion::Criterion)
    out = Ref{Cdouble}(0)
    check(L.cebra_criterion_get_temperature(criterion, out))
    return out[]
end

# Sizes of (ref, pos, neg), each `d × samples`: (n, m, d).
function _samples(ref, pos, neg)
    d, n = size(ref)
    size(pos) == (d, n) || throw(DimensionMismatch("pos is $(size(pos)), ref is $(size(ref))"))
    size(neg, 1) == d || throw(DimensionMismatch("neg is $(size(neg)), needs $d rows like ref"))
    return n, size(neg, 2), d
end

"""
    forward(criterion, ref, pos, neg) -> (loss, align, uniform)

`ref` and `pos` are `d × n`, `neg` is `d × m` (one sample a column). InfoNCE criterions give three
numbers, `nce` three vectors of `n` per-sample values.
"""
function forward(criterion::Criterion, ref::AbstractMatrix{<:Real}, pos::AbstractMatrix{<:Real},
                 neg::AbstractMatrix{<:Real})
    r, p, q = dense32(ref), dense32(pos), dense32(neg)
    n, m, d = _samples(r, p, q)
    count = criterion.name == "nce" ? n : 1
    loss, align, uniform = (Vector{Float32}(undef, count) for _ in 1:3)
    check(L.cebra_criterion_forward(criterion, r, p, Int64(n), q, Int64(m), Int64(d), loss, align, uniform,
                                    Csize_t(count)))
    return count == 1 ? (loss[1], align[1], uniform[1]) : (loss, align, uniform)
end

"""
    backward(criterion, ref, pos, neg) -> (loss, grad_ref, grad_pos, grad_neg, grad_log_inverse_temperature)

The scalar training minimises and its gradients (shaped as `ref`, `pos`, `neg`);
`grad_log_inverse_temperature` is `nothing` for criterions without a learnable temperature.
"""
function backward(criterion::Criterion, ref::AbstractMatrix{<:Real}, pos::AbstractMatrix{<:Real},
                  neg::AbstractMatrix{<:Real})
    r, p, q = dense32(ref), dense32(pos), dense32(neg)
    n, m, d = _samples(r, p, q)
    loss = Ref{Cfloat}(0)
    grad_ref, grad_pos, grad_neg = similar(r), similar(p), similar(q)
    grad_temperature = Ref{Cdouble}(NaN)
    check(L.cebra_criterion_backward(criterion, r, p, Int64(n), q, Int64(m), Int64(d), loss,
                                     grad_ref, Csize_t(length(grad_ref)), grad_pos, Csize_t(length(grad_pos)),
                                     grad_neg, Csize_t(length(grad_neg)), grad_temperature))
    learnable = startswith(criterion.name, "learnable-")
    return (loss[], grad_ref, grad_pos, grad_neg, learnable ? grad_temperature[] : nothing)
end

function _similarity(f, ref, pos, neg)
    r, p, q = dense32(ref), dense32(pos), dense32(neg)
    n, m, d = _samples(r, p, q)
    pos_dist = Vector{Float32}(undef, n)
    neg_dist = Matrix{Float32}(undef, m, n)
    check(f(r, p, Int64(n), q, Int64(m), Int64(d), pos_dist, Csize_t(n), neg_dist, Csize_t(length(neg_dist))))
    return (pos_dist, neg_dist)
end

"""
    dot_similarity(ref, pos, neg) -> (pos_dist, neg_dist)

`pos_dist[i] = ref[:, i]·pos[:, i]` and `neg_dist[j, i] = ref[:, i]·neg[:, j]` (`neg_dist` is `m × n`).
"""
dot_similarity(ref::AbstractMatrix{<:Real}, pos::AbstractMatrix{<:Real}, neg::AbstractMatrix{<:Real}) =
    _similarity(L.cebra_dot_similarity, ref, pos, neg)

"""Negative squared Euclidean distances, shaped as in `dot_similarity`."""
euclidean_similarity(ref::AbstractMatrix{<:Real}, pos::AbstractMatrix{<:Real}, neg::AbstractMatrix{<:Real}) =
    _similarity(L.cebra_euclidean_similarity, ref, pos, neg)

"""
    infonce(pos_dist, neg_dist) -> (loss, align, uniform)

The stabilised InfoNCE of `pos_dist` (`n`) and `neg_dist` (`m × n`, as `dot_similarity` gives it).
"""
function infonce(pos_dist::AbstractVector{<:Real}, neg_dist::AbstractMatrix{<:Real})
    p, q = dense32(pos_dist), dense32(neg_dist)
    n = length(p)
    size(q, 2) == n || throw(DimensionMismatch("neg_dist is $(size(q)), needs $n columns"))
    loss, align, uniform = Ref{Cfloat}(0), Ref{Cfloat}(0), Ref{Cfloat}(0)
    check(L.cebra_infonce(p, q, Int64(n), Int64(size(q, 1)), loss, align, uniform))
    return (loss[], align[], uniform[])
end

end # module Cebra
