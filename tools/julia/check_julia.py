#!/usr/bin/env python3
"""Static check of the Julia package bindings/julia/Cebra (Julia itself is not needed).

    check_julia.py --header include/cebra.h --lib target/release/libcebra.so bindings/julia/Cebra
    check_julia.py --self-test --header include/cebra.h --lib target/release/libcebra.so

Checks, with tree-sitter's Julia grammar (PyPI packages `tree-sitter` and `tree-sitter-julia`):
  1. every .jl file of the package parses (no ERROR or MISSING node);
  2. every `ccall(...)` / `@ccall` names a function that the header declares and the library exports
     (`nm -D`), with the header's argument count, matching argument types and return type, and as many
     argument values as types;
  3. every `@cfunction(f, R, (T...))` matches one of the header's callback typedefs;
  4. every function of the header has a `ccall`, and is used by the high-level API (a .jl file of src/
     other than the generated LibCebra.jl) or listed there in a comment "not wrapped: <name> -- <reason>";
  5. high-level calls of LibCebra functions pass the header's argument count, and every `cebra_*`
     function and `CEBRA_*` constant named in the package is one of the header.
--self-test runs the checker on small broken packages (a syntax error, a wrong argument count, a wrong
type, an unknown function, an unwrapped function) and fails unless each one is caught.
"""

import argparse
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import tempfile

import cheader

try:
    import tree_sitter
    import tree_sitter_julia
except ImportError as e:  # pragma: no cover - reported to the user
    sys.exit(f"check_julia: {e}; install the PyPI packages tree-sitter and tree-sitter-julia")

GENERATED = "LibCebra.jl"

# The Julia spellings accepted for each C scalar type (checked independently of the generator).
SCALAR_TYPES = {
    "void": {"Cvoid", "Nothing"},
    "int8_t": {"Int8"},
    "int16_t": {"Int16", "Cshort"},
    "int32_t": {"Int32", "Cint"},
    "int64_t": {"Int64", "Clonglong"},
    "uint8_t": {"UInt8", "Cuchar"},
    "uint16_t": {"UInt16", "Cushort"},
    "uint32_t": {"UInt32", "Cuint"},
    "uint64_t": {"UInt64", "Culonglong"},
    "size_t": {"Csize_t", "UInt"},
    "float": {"Cfloat", "Float32"},
    "double": {"Cdouble", "Float64"},
}
CHAR_POINTER = {"Cstring", "Ptr{UInt8}", "Ptr{Cchar}", "Ptr{Int8}", "Ptr{Cuchar}"}


class TypeTable:
    def __init__(self, decls):
        self.scalars = {k: set(v) for k, v in SCALAR_TYPES.items()}
        for d in decls:
            if d.kind == "opaque":
                self.scalars[d.name] = {d.name}
            elif d.kind == "alias":
                self.scalars[d.name] = {d.name} | self.accepted(d.value)
            elif d.kind == "callback":
                self.scalars[d.name] = {d.name, "Ptr{Cvoid}", "Ptr{Nothing}"}

    def accepted(self, ctype):
        """The set of Julia type spellings that match the C type `ctype`."""
        words = ctype.replace("**", "* *").split()
        stars = words.count("*")
        core = [w for w in words if w not in ("const", "struct", "*")]
        if len(core) != 1:
            raise cheader.HeaderError(f"cannot map the C type '{ctype}'")
        base = core[0]
        if base == "char":
            if stars != 1:
                raise cheader.HeaderError(f"cannot map the C type '{ctype}'")
            return set(CHAR_POINTER)
        if base not in self.scalars:
            raise cheader.HeaderError(f"no Julia type known for the C type '{ctype}'")
        types = set(self.scalars[base])
        if base == "void" and stars:
            types = {"Cvoid", "Nothing"}
        for _ in range(stars):
            types = {f"Ptr{{{t}}}" for t in types}
        return types


def normalise_julia_type(text):
    text = re.sub(r"\s+", "", text)
    return re.sub(r"\b(?:Cebra\.)?(?:LibCebra|L)\.", "", text)


class Problems:
    def __init__(self):
        self.items = []

    def add(self, path, node, message):
        line = node.start_point[0] + 1 if node is not None else 0
        self.items.append(f"{path}:{line}: {message}")


def named_children(node):
    return [c for c in node.children if c.is_named and c.type not in ("line_comment", "block_comment")]


def text(node):
    return node.text.decode("utf-8")


def walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def tuple_items(node):
    """The items of a Julia tuple expression `(a, b)` / `(a,)` / `()`, or None if it is not one."""
    if node.type == "tuple_expression":
        return named_children(node)
    if node.type == "parenthesized_expression":  # `(a)` without a comma is not a tuple
        return None
    return None


def ccall_parts(node):
    """(name, return type text, [arg type texts], value count, name node) of a ccall, or a str error."""
    args = named_children(named_children(node)[1]) if len(named_children(node)) > 1 else []
    if len(args) < 3:
        return "ccall needs (function, library), return type and argument types"
    target, ret, types = args[0], args[1], args[2]
    sym = target
    if target.type == "tuple_expression":  # ccall((:name, library), ...)
        items = named_children(target)
        if len(items) != 2:
            return "the ccall target must be (:function, library)"
        sym = items[0]
    elif target.type == "call_expression" and len(named_children(target)) > 1:
        # ccall(lookup(..., :name), ...): a function pointer looked up by a literal name.
        quoted = [a for a in named_children(named_children(target)[1]) if a.type == "quote_expression"]
        if len(quoted) != 1:
            return f"the ccall function pointer must be looked up by one literal :name, got '{text(target)}'"
        sym = quoted[0]
    if sym.type != "quote_expression":
        return f"the ccall function must be a literal :name, got '{text(sym)}'"
    name = text(sym).lstrip(":")
    items = tuple_items(types)
    if items is None:
        return f"the ccall argument types must be a tuple, got '{text(types)}'"
    return name, text(ret), [text(t) for t in items], len(args) - 3


def at_ccall_parts(node):
    """The same for `@ccall lib.name(a::T, ...)::R`."""
    margs = [c for c in named_children(node) if c.type != "macro_identifier"]
    inner = margs[0] if margs else None
    if inner is not None and inner.type == "macro_argument_list":
        inner = named_children(inner)[0] if named_children(inner) else None
    if inner is None or inner.type != "typed_expression":
        return "@ccall needs lib.name(args...)::ReturnType"
    call, ret = named_children(inner)[0], named_children(inner)[-1]
    if call.type != "call_expression":
        return "@ccall needs lib.name(args...)::ReturnType"
    callee = named_children(call)[0]
    name = text(callee).split(".")[-1]
    types, values = [], 0
    for arg in named_children(named_children(call)[1]):
        if arg.type != "typed_expression":
            return f"@ccall argument '{text(arg)}' has no ::Type"
        types.append(text(named_children(arg)[-1]))
        values += 1
    return name, text(ret), types, values


def exported_symbols(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True, capture_output=True, text=True).stdout
    return {parts[2] for parts in (line.split() for line in out.splitlines()) if len(parts) == 3 and parts[1] == "T"}


def jl_files(package):
    files = []
    for root, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".jl")]
    return files


def check(package, header, lib):
    """Returns the list of problems (empty when the package is consistent)."""
    problems = Problems()
    decls = cheader.parse_file(header)
    funcs = {d.name: d for d in cheader.functions(decls)}
    callbacks = [d for d in decls if d.kind == "callback"]
    macros = {d.name for d in decls if d.kind == "define"}
    table = TypeTable(decls)
    exported = exported_symbols(lib)
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))

    files = jl_files(package)
    if not files:
        problems.add(package, None, "no .jl files")
    ccalled = set()
    used = {}  # header function -> first high-level file using it
    excluded = {}
    for path in files:
        rel = os.path.relpath(path, package)
        with open(path, "rb") as f:
            source = f.read()
        tree = parser.parse(source)
        for node in walk(tree.root_node):
            if node.type == "ERROR" or node.is_missing:
                problems.add(rel, node, f"syntax error near '{text(node)[:40]}'")
        in_src = rel.split(os.sep)[0] == "src"
        high_level = in_src and os.path.basename(path) != GENERATED
        if high_level:
            for lineno, line in enumerate(source.decode("utf-8").splitlines(), 1):
                m = re.match(r"^\s*#\s*not wrapped:\s*(\w+)", line)
                if m:
                    excluded[m.group(1)] = f"{rel}:{lineno}"
        for node in walk(tree.root_node):
            if node.type == "identifier" and high_level and text(node).startswith("cebra_"):
                if text(node) in funcs:
                    used.setdefault(text(node), rel)
                else:
                    problems.add(rel, node, f"{text(node)} is not a function of include/cebra.h")
            if node.type == "call_expression" and high_level:
                check_call_arity(rel, node, funcs, problems)
            if node.type == "identifier" and re.fullmatch(r"CEBRA_[A-Z0-9_]+", text(node)) and text(node) not in macros:
                problems.add(rel, node, f"{text(node)} is not a constant of include/cebra.h")
            parts = None
            if node.type == "call_expression" and named_children(node) and text(named_children(node)[0]) == "ccall":
                parts = ccall_parts(node)
            elif node.type == "macrocall_expression" and text(named_children(node)[0]) == "@ccall":
                parts = at_ccall_parts(node)
            elif node.type == "macrocall_expression" and text(named_children(node)[0]) == "@cfunction":
                check_cfunction(rel, node, callbacks, table, problems)
                continue
            else:
                continue
            if isinstance(parts, str):
                problems.add(rel, node, parts)
                continue
            name, ret, types, values = parts
            ccalled.add(name)
            if name not in funcs:
                problems.add(rel, node, f"ccall of {name}, which include/cebra.h does not declare")
                continue
            if name not in exported:
                problems.add(rel, node, f"ccall of {name}, which the library does not export")
            decl = funcs[name]
            if len(types) != len(decl.params):
                problems.add(rel, node, f"{name}: {len(types)} argument types, the header has {len(decl.params)}")
            else:
                for i, (jt, p) in enumerate(zip(types, decl.params)):
                    ok = table.accepted(p.ctype)
                    if normalise_julia_type(jt) not in ok:
                        problems.add(rel, node, f"{name}: argument {i + 1} ({p.name}) is {jt}, the header has "
                                                f"'{p.ctype}' ({' or '.join(sorted(ok))})")
            if values != len(types):
                problems.add(rel, node, f"{name}: {values} argument values for {len(types)} types")
            ok_ret = table.accepted(decl.ret)
            if decl.ret.replace(" ", "") in ("constchar*", "char*"):
                ok_ret = ok_ret | {"Cstring"}
            if normalise_julia_type(ret) not in ok_ret:
                problems.add(rel, node, f"{name}: returns {ret}, the header has '{decl.ret}' "
                                        f"({' or '.join(sorted(ok_ret))})")
    for name in funcs:
        if name not in ccalled:
            problems.add("src", None, f"no ccall of {name} (regenerate src/{GENERATED})")
        if name in used and name in excluded:
            problems.add(excluded[name].split(":")[0], None, f"{name} is wrapped and also listed as not wrapped")
        if name not in used and name not in excluded:
            problems.add("src", None, f"{name} is not wrapped by the high-level API (nor listed as 'not wrapped: {name} -- reason')")
    for name, where in excluded.items():
        if name not in funcs:
            problems.add(where.split(":")[0], None, f"'not wrapped: {name}' names no function of the header")
    return problems.items


def check_call_arity(rel, node, funcs, problems):
    """A call of a LibCebra function from the high-level API passes as many arguments as the header has."""
    children = named_children(node)
    if len(children) < 2 or children[1].type != "argument_list":
        return
    name = text(children[0]).split(".")[-1]
    if name not in funcs:
        return
    args = [a for a in named_children(children[1]) if a.type not in ("keyword_parameters",)]
    if any(a.type == "splat_expression" for a in args):
        return
    want = len(funcs[name].params)
    if len(args) != want:
        problems.add(rel, node, f"call of {name} with {len(args)} arguments, the header has {want}")


def check_cfunction(rel, node, callbacks, table, problems):
    margs = [c for c in named_children(node) if c.type != "macro_identifier"]
    if len(margs) == 1 and margs[0].type == "macro_argument_list":
        margs = named_children(margs[0])
    if len(margs) == 1 and margs[0].type == "argument_list":
        margs = named_children(margs[0])
    if len(margs) != 3 or tuple_items(margs[2]) is None:
        problems.add(rel, node, "@cfunction needs (f, ReturnType, (ArgTypes...,))")
        return
    ret = normalise_julia_type(text(margs[1]))
    types = [normalise_julia_type(text(t)) for t in tuple_items(margs[2])]
    for cb in callbacks:
        if (len(cb.params) == len(types) and ret in table.accepted(cb.ret)
                and all(t in table.accepted(p.ctype) for t, p in zip(types, cb.params))):
            return
    problems.add(rel, node, f"@cfunction({text(margs[1])}, ({', '.join(types)})) matches no callback type of the header "
                            f"({', '.join(cb.name for cb in callbacks)})")


# ---- self-test ----------------------------------------------------------------------------------------

GOOD_WRAPPER = """
module Mini
include("LibCebra.jl")
# not wrapped: {excluded} -- self-test
{uses}
end
"""

SELF_TESTS = [
    # (name, file text replacing src/Extra.jl, expected message fragment)
    ("syntax error", "function broken(x\n    x +\nend\n", "syntax error"),
    ("argument count", "f() = ccall((:cebra_manual_seed, lib()), UInt32, (UInt64, Int32), 1, 2)\n",
     "cebra_manual_seed: 2 argument types, the header has 1"),
    ("argument type", "f() = ccall((:cebra_set_num_threads, lib()), UInt32, (Int64,), 1)\n",
     "cebra_set_num_threads: argument 1 (n) is Int64"),
    ("pointer form", "f() = ccall(_function_pointer(_c, :cebra_set_num_threads), UInt32, (Int64,), 1)\n",
     "cebra_set_num_threads: argument 1 (n) is Int64"),
    ("return type", "f() = ccall((:cebra_abi_version, lib()), Int64, ())\n", "cebra_abi_version: returns Int64"),
    ("unknown function", "f() = ccall((:cebra_no_such_function, lib()), UInt32, ())\n",
     "cebra_no_such_function, which include/cebra.h does not declare"),
    ("value count", "f() = ccall((:cebra_manual_seed, lib()), UInt32, (UInt64,))\n",
     "cebra_manual_seed: 0 argument values for 1 types"),
    ("@ccall type", "f() = @ccall lib.cebra_manual_seed(1::Int32)::UInt32\n", "cebra_manual_seed: argument 1 (seed) is Int32"),
    ("high-level arity", "f(m) = LibCebra.cebra_model_num_input(m)\n", "call of cebra_model_num_input with 1 arguments, the header has 2"),
    ("high-level unknown", "f(m) = LibCebra.cebra_model_no_such(m)\n", "cebra_model_no_such is not a function of include/cebra.h"),
    ("unknown constant", "f(s) = s == LibCebra.CEBRA_STATUS_NO_SUCH\n", "CEBRA_STATUS_NO_SUCH is not a constant"),
    ("@cfunction", "g() = @cfunction(h, Int32, (Ptr{Cvoid}, Ptr{Cfloat}))\n", "matches no callback type"),
]


def self_test(header, lib, generated_text):
    decls = cheader.parse_file(header)
    names = [d.name for d in cheader.functions(decls)]
    failures = 0

    def run(extra, excluded, uses):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "src"))
            with open(os.path.join(tmp, "src", GENERATED), "w") as f:
                f.write(generated_text)
            with open(os.path.join(tmp, "src", "Mini.jl"), "w") as f:
                f.write(GOOD_WRAPPER.format(excluded=excluded, uses=uses))
            if extra is not None:
                with open(os.path.join(tmp, "src", "Extra.jl"), "w") as f:
                    f.write(extra)
            return check(tmp, header, lib)

    uses_all_but_first = "\n".join(f"LibCebra.{n}" for n in names[1:])
    baseline = run(None, names[0], uses_all_but_first)
    if baseline:
        print("self-test: the consistent mini package fails:\n  " + "\n  ".join(baseline))
        failures += 1
    for label, extra, expect in SELF_TESTS:
        found = run(extra, names[0], uses_all_but_first)
        if not any(expect in p for p in found):
            print(f"self-test: '{label}' was not caught (expected '{expect}'; got {found})")
            failures += 1
    # A header function neither used nor excluded, and a stale exclusion.
    found = run(None, "cebra_gone", uses_all_but_first)
    for expect in (f"{names[0]} is not wrapped", "'not wrapped: cebra_gone' names no function"):
        if not any(expect in p for p in found):
            print(f"self-test: '{expect}' was not caught (got {found})")
            failures += 1
    print(f"check_julia self-test: {len(SELF_TESTS) + 3 - failures} of {len(SELF_TESTS) + 3} cases caught as expected")
    return failures == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("package", nargs="?")
    args = ap.parse_args()
    try:
        if args.self_test:
            import gen_libcebra
            return 0 if self_test(args.header, args.lib, gen_libcebra.generate(cheader.parse_file(args.header))) else 1
        if not args.package:
            ap.error("the package folder is required")
        problems = check(args.package, args.header, args.lib)
    except (cheader.HeaderError, subprocess.CalledProcessError, OSError) as e:
        print(f"check_julia: {e}", file=sys.stderr)
        return 1
    for p in problems:
        print(f"check_julia: {p}", file=sys.stderr)
    n_files = len(jl_files(args.package))
    if problems:
        print(f"check_julia: {len(problems)} problem(s) in {args.package}", file=sys.stderr)
        return 1
    n_funcs = len(cheader.functions(cheader.parse_file(args.header)))
    print(f"check_julia: {args.package}: {n_files} files parse; ccalls match include/cebra.h and the library; "
          f"all {n_funcs} header functions are wrapped or listed as not wrapped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
