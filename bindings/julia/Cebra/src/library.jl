# Finding and opening libcebra (included by the generated LibCebra.jl). Hand-written.
#
# The ccalls of LibCebra call function pointers looked up here (`ccall(pointer, ...)`), not
# `ccall((:name, library), ...)`: the library path is only known at run time, and a pointer is the
# form every Julia version accepts for that.

using Libdl

const _LIBRARY_PATH = Ref{String}("")
const _LIBRARY_HANDLE = Ref{Ptr{Cvoid}}(C_NULL)
const _LIBRARY_LOCK = ReentrantLock()
# One cache per C function (see `_function_pointer`), reset when the module is loaded.
const _FUNCTION_POINTERS = Base.RefValue{Ptr{Cvoid}}[]

# Names the build or an install gives the library, tried in deps/.
const _LIBRARY_FILES = ("libcebra.so", "libcebra.so.2", "libcebra.dylib", "cebra.dll")

"""
    libcebra() -> String

The path of the libcebra shared library this module calls: `ENV["LIBCEBRA"]` (a path) when set,
else `libcebra.so` in the package's `deps/` folder, else `libcebra` from the system search path
(`LD_LIBRARY_PATH`, the linker cache). Looked up once, at the first call.
"""
function libcebra()
    lock(_LIBRARY_LOCK) do
        if isempty(_LIBRARY_PATH[])
            _LIBRARY_PATH[] = find_libcebra()
        end
        _LIBRARY_PATH[]
    end
end

"""
    find_libcebra() -> String

Searches for libcebra as `libcebra()` describes and returns its path; the error lists what was tried.
"""
function find_libcebra()
    env = get(ENV, "LIBCEBRA", "")
    if !isempty(env)
        isfile(env) || error("ENV[\"LIBCEBRA\"] = \"$env\" is not a file")
        return abspath(env)
    end
    tried = String[]
    deps = normpath(joinpath(@__DIR__, "..", "deps"))
    for file in _LIBRARY_FILES
        path = joinpath(deps, file)
        push!(tried, path)
        isfile(path) && return path
    end
    found = Libdl.find_library(["libcebra"])
    isempty(found) || return found
    push!(tried, "libcebra on the system library path")
    error("libcebra not found; tried: ", join(tried, ", "),
          ". Set ENV[\"LIBCEBRA\"] to the path of libcebra.so (for example target/release/libcebra.so).")
end

"""The `dlopen` handle of `libcebra()`, opened at the first call."""
function library_handle()
    handle = _LIBRARY_HANDLE[]
    handle == C_NULL || return handle
    lock(_LIBRARY_LOCK) do
        if _LIBRARY_HANDLE[] == C_NULL
            _LIBRARY_HANDLE[] = Libdl.dlopen(libcebra())
        end
        _LIBRARY_HANDLE[]
    end
end

# A new cache for one function pointer.
function _function_pointer_cache()
    cache = Ref{Ptr{Cvoid}}(C_NULL)
    push!(_FUNCTION_POINTERS, cache)
    return cache
end

# The address of the C function `name`, looked up once and kept in `cache`.
@inline function _function_pointer(cache::Base.RefValue{Ptr{Cvoid}}, name::Symbol)
    address = cache[]
    address == C_NULL || return address
    address = Libdl.dlsym(library_handle(), name)
    cache[] = address
    return address
end

function __init__()
    # Pointers and handles are per process: forget any a precompiled image may hold.
    _LIBRARY_HANDLE[] = C_NULL
    _LIBRARY_PATH[] = ""
    foreach(cache -> cache[] = C_NULL, _FUNCTION_POINTERS)
    return nothing
end
