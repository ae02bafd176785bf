# Finding libcebra (included by the generated LibCebra.jl). Hand-written.

using Libdl

const _LIBRARY_PATH = Ref{String}("")
const _LIBRARY_LOCK = ReentrantLock()

# Names the build or an install gives the library, tried in deps/.
const _LIBRARY_FILES = ("libcebra.so", "libcebra.so.2", "libcebra.dylib", "cebra.dll")

"""
    libcebra() -> String

The libcebra shared library every `ccall` of this module uses: `ENV["LIBCEBRA"]` (a path) when set,
else `libcebra.so` in the package's `deps/` folder, else `libcebra` from the system search path
(`LD_LIBRARY_PATH`, the linker cache). Looked up once, at the first call.
"""
function libcebra()
    path = _LIBRARY_PATH[]
    isempty(path) || return path
    lock(_LIBRARY_LOCK) do
        if isempty(_LIBRARY_PATH[])
            _LIBRARY_PATH[] = find_libcebra()
        end
        _LIBRARY_PATH[]
    end
end

"""
    find_libcebra() -> String

Searches for libcebra as `libcebra()` describes and returns its path; an error lists what was tried.
"""
function find_libcebra()
    tried = String[]
    env = get(ENV, "LIBCEBRA", "")
    if !isempty(env)
        isfile(env) || error("ENV[\"LIBCEBRA\"] = \"$env\" is not a file")
        return abspath(env)
    end
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
