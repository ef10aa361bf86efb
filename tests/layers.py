#!/usr/bin/env python3
"""The layer check: imports between the top-level modules of src/ go one way, downwards.

usage: tests/layers.py [SRC_DIR]   (default: src; run by `make lint`)

Walks the crate's module tree from lib.rs the way rustc does (`mod x;` -> x.rs or x/mod.rs,
`#[path]`), skipping every item and file compiled only for tests (`#[cfg(test)]`, `#![cfg(test)]`).
In what is left, after blanking comments and string literals, it reads each reference to another
top-level module: `crate::x`, `use crate::{x, ..}`, and `super::` paths that climb to the crate
root. It fails (exit 1), naming the file, the line and the import, when a module imports one in a
layer above its own, when modules of one layer import each other in a cycle, or when a top-level
module is missing from LAYERS. Before that it checks itself on small crates it writes (an upward
import, through `super::` and in a `use` group, a cycle, an unplaced module, and imports in tests,
comments and strings that must not count), so a check that stopped failing fails.
"""
import pathlib
import re
import sys

# Bottom first. A module may import modules of its own layer (without cycles) and of layers below.
LAYERS = [
    ("foundation", ["json", "error", "clock", "host", "stream", "schema", "patterns", "usage", "headers"]),
    ("representation", ["conversation"]),
    ("guardrails", ["guardrails"]),
    ("client dialects", ["openai", "anthropic"]),
    ("client seam", ["client"]),
    ("accounting", ["accounting"]),
    ("providers", ["providers"]),
    ("router", ["router"]),
    ("config", ["config"]),
    ("gateway", ["gateway"]),
    ("shell", ["filter", "native"]),
]
LAYER_OF = {m: i for i, (_, members) in enumerate(LAYERS) for m in members}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CFG_ATTR = re.compile(r"#\[\s*cfg\s*\((.*?)\)\s*\]", re.S)
INNER_CFG = re.compile(r"#!\[\s*cfg\s*\((.*?)\)\s*\]", re.S)
MOD_DECL = re.compile(r"(?:#\[\s*path\s*=\s*(\"[^\"]*\")\s*\]\s*)?(?:pub(?:\s*\([^)]*\))?\s+)?\bmod\s+(" + IDENT + r")\s*;")
REF = re.compile(r"(?<![A-Za-z0-9_$])(crate|(?:super\s*::\s*)*super)\s*::\s*(\{|" + IDENT + ")")


def blank(text: str) -> str:
    """Comments, string and char literals replaced by spaces (newlines kept, so offsets and line
    numbers still match the original)."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        prev = text[i - 1] if i else " "
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif (m := re.compile(r"b?r(#*)\"").match(text, i)) and not (prev.isalnum() or prev == "_"):
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            wipe(m.end(), j - 1 - len(m.group(1)))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, j)
            i = j + 1
        elif c == "'" and (m := re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]*\}|.)|[^\\'\n])'").match(text, i)):
            wipe(i + 1, m.end() - 1)
            i = m.end()
        else:
            i += 1
    return "".join(out)


def only_for_tests(predicate: str) -> bool:
    return re.search(r"\btest\b", re.sub(r"not\s*\(\s*test\s*\)", "", predicate)) is not None


def item_end(text: str, start: int) -> int:
    """End of the item that starts at `start` (after its attributes): its `;`, or its closing brace."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
            if depth == 0 and c == "}":
                return i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return len(text)


def production(text: str) -> str | None:
    """Blanked text without the items compiled only for tests; `None` for a file that is."""
    text = blank(text)
    inner = INNER_CFG.search(text)
    if inner and only_for_tests(inner.group(1)):
        return None
    out, pos = [], 0
    for m in CFG_ATTR.finditer(text):
        if m.start() < pos or not only_for_tests(m.group(1)):
            continue
        end = item_end(text, m.end())
        out.append(text[pos:m.start()])
        out.append("".join("\n" if ch == "\n" else " " for ch in text[m.start():end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def group_heads(text: str, brace: int) -> list[str]:
    """The first path segment of each entry of the `{...}` group opening at `brace`."""
    depth, part, heads = 0, "", []
    for c in text[brace:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                heads.append(part)
                break
        if depth == 1 and c == ",":
            heads.append(part)
            part = ""
        elif depth >= 1:
            part += c
    return [m.group(0) for h in heads if (m := re.match(IDENT, h.strip()))]


def walk(src: pathlib.Path):
    """(file, module path, production text) for every file of the crate outside tests."""
    todo = [(src / "lib.rs", [], True)]
    while todo:
        path, mod_path, owns_dir = todo.pop()
        original = path.read_text(errors="replace")
        text = production(original)
        if text is None:
            continue
        yield path, mod_path, text
        children = path.parent if owns_dir else path.parent / path.stem
        for m in MOD_DECL.finditer(text):
            name = m.group(2)
            if m.group(1):
                child = path.parent / original[m.start(1) + 1 : m.end(1) - 1]
                todo.append((child, mod_path + [name], child.name == "mod.rs"))
            elif (children / f"{name}.rs").exists():
                todo.append((children / f"{name}.rs", mod_path + [name], False))
            elif (children / name / "mod.rs").exists():
                todo.append((children / name / "mod.rs", mod_path + [name], True))


def check(src: pathlib.Path) -> tuple[list[str], str]:
    """The problems found in the crate at `src`, and a summary line."""
    files = list(walk(src))
    top_level = {mod_path[0] for _, mod_path, _ in files if mod_path}
    problems = [f"{src}/lib.rs: module `{m}` is in no layer: add it to LAYERS in tests/layers.py" for m in sorted(top_level - LAYER_OF.keys())]
    edges = {}  # (from, to) -> first "file:line: text"
    for path, mod_path, text in files:
        if not mod_path:
            continue
        here = mod_path[0]
        for m in REF.finditer(text):
            base = m.group(1)
            # The module the path starts from: the crate root, or `super`s climbed from this
            # file's module (inline modules outside tests are not tracked: none use `super`).
            anchor = [] if base == "crate" else mod_path[: max(len(mod_path) - base.count("super"), 0)]
            if anchor:
                targets = [anchor[0]]
            elif m.group(2) == "{":
                targets = group_heads(text, m.start(2))
            else:
                targets = [m.group(2)]
            for target in targets:
                if target == here or target not in top_level:
                    continue
                line = line_of(text, m.start())
                shown = f"{m.group(1)}::{{.., {target}, ..}}" if m.group(2) == "{" else m.group(0).strip()
                where = f"{path}:{line}: {here} imports {target} (`{shown}`)"
                edges.setdefault((here, target), where)
    upward = {(a, b) for a, b in edges if a in LAYER_OF and b in LAYER_OF and LAYER_OF[b] > LAYER_OF[a]}
    for here, target in sorted(upward):
        above = LAYERS[LAYER_OF[target]][0]
        problems.append(f"{edges[here, target]}: `{target}` is in layer `{above}`, above `{here}` (layer `{LAYERS[LAYER_OF[here]][0]}`)")
    # Without the upward imports (each reported above), a cycle can only be within one layer.
    problems += cycles({e: where for e, where in edges.items() if e not in upward})
    return problems, f"{len(files)} files, {len(edges)} imports between top-level modules"


def self_test() -> None:
    """The check fails on what it must and only on that, on small crates written to a temp dir."""
    import tempfile

    clean = {
        "lib.rs": "pub mod json;\npub mod patterns;\npub mod headers;\npub mod accounting;\npub mod gateway;\n",
        "json.rs": "",
        "patterns.rs": "",
        "headers.rs": "use crate::patterns;\n",
        "accounting/mod.rs": "mod budget;\nuse crate::{json, headers::x};\n",
        "accounting/budget.rs": "use super::super::json;\nuse super::Thing;\n",
        "gateway.rs": "use crate::accounting::budget;\n",
    }
    upward_in_tests_comments_strings = {
        "json.rs": '// crate::gateway\nconst S: &str = "crate::gateway";\nconst R: &str = r#"{ crate::gateway }"#;\n'
        "#[cfg(test)]\nmod tests {\n    use crate::gateway;\n    const C: char = '{';\n}\n",
        "accounting/mod.rs": "mod budget;\n#[cfg(test)]\n#[path = \"t.rs\"]\nmod tests;\n",
        "accounting/t.rs": "use crate::gateway;\n",
        "lib.rs": clean["lib.rs"] + "mod properties;\n",
        "properties.rs": "#![cfg(test)]\nuse crate::gateway;\n",
    }
    above = ": `gateway` is in layer `gateway`, above"
    cases = [
        ("clean", {}, []),
        ("ignored", upward_in_tests_comments_strings, []),
        ("upward", {"json.rs": "\nuse crate::gateway::Gateway;\n"}, ["json.rs:2: json imports gateway (`crate::gateway`)" + above]),
        ("upward via super", {"accounting/budget.rs": "use super::super::gateway;\n"}, ["budget.rs:1: accounting imports gateway (`super::super::gateway`)" + above]),
        ("upward in a group", {"headers.rs": "use crate::{patterns, accounting::Charges};\n"}, ["headers.rs:1: headers imports accounting (`crate::{.., accounting, ..}`): `accounting` is in layer `accounting`, above"]),
        ("upward outside tests", {"json.rs": "#[cfg(not(test))]\nfn f() { crate::gateway::g() }\n"}, ["json.rs:2: json imports gateway (`crate::gateway`)" + above]),
        ("cycle", {"patterns.rs": "use crate::headers;\n"}, ["cycle among headers, patterns"]),
        ("unplaced", {"lib.rs": clean["lib.rs"] + "mod extra;\n", "extra.rs": ""}, ["module `extra` is in no layer"]),
    ]
    for name, change, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in {**clean, **change}.items():
                (pathlib.Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                (pathlib.Path(tmp) / rel).write_text(text)
            problems, _ = check(pathlib.Path(tmp))
            found = [e for e in expected if any(e in p for p in problems)]
            if len(problems) != len(expected) or found != expected:
                sys.exit(f"layers self-test `{name}`: expected {expected}, got {problems}")


def main() -> int:
    self_test()
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    problems, summary = check(src)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("layers: imports go downwards only: " + " <- ".join(name for name, _ in LAYERS), file=sys.stderr)
        return 1
    print(f"layers: {summary}, all downwards (self-test passed)")
    return 0


def cycles(edges: dict) -> list[str]:
    """Each cycle among the modules, as the imports that close it (Tarjan's strongly connected
    components, iteratively)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    out = []
    for group in groups:
        closing = [where for (a, b), where in sorted(edges.items()) if a in group and b in group]
        out.append(f"cycle among {', '.join(group)}: " + "; ".join(closing))
    return out


if __name__ == "__main__":
    sys.exit(main())
