"""The code stays a size a reader can hold (issue 20): in passes/, no module over 250 lines, no class over 100, no
function over 60."""
import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_modules_classes_and_functions_stay_small():
    too_big = []
    for path in sorted(glob.glob(os.path.join(ROOT, "passes", "**", "*.py"), recursive=True)):
        source = open(path).read()
        name = os.path.relpath(path, ROOT)
        if source.count("\n") > 250:
            too_big.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, ast.ClassDef) and size > 100 or \
                    isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 60:
                too_big.append(f"{name}: {type(node).__name__} {node.name} {size} lines")
    assert not too_big, too_big


def _imports(path: str, module: str, package: str):
    """The modules of the package that `module` imports when it loads (not those only under TYPE_CHECKING, nor
    those imported inside a function)."""
    found = set()
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for n in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
            if isinstance(n, ast.ImportFrom) and n.level:
                base = package.split(".")[:len(package.split(".")) - (n.level - 1)]
                target = ".".join(base + ([n.module] if n.module else []))
                for alias in n.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if os.path.exists(os.path.join(ROOT, *sub.split(".")) + ".py") else target)
    return found


def test_no_module_imports_itself_round_a_circle():
    """Modules import in one direction (rules/ builds on rewrite/'s layout, and the rewrite reads Plans without
    importing rules/ at run time): a circle would make the order of imports matter."""
    graph = {}
    for path in glob.glob(os.path.join(ROOT, "passes", "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        module = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
        package = module if rel.endswith(".__init__") else module.rsplit(".", 1)[0]
        graph[module] = _imports(path, module, package)
    state, circles = {}, []

    def visit(m, trail):
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if d == m or d not in graph:
                continue
            if state.get(d) == "open" and not d.startswith(m + ".") and not m.startswith(d + "."):
                circles.append(trail[trail.index(d):] + [d] if d in trail else [m, d])
            elif d not in state:
                visit(d, trail + [d])
        state[m] = "done"
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not circles, circles
    assert "passes.fc_to_conv.rewrite.writer" in graph and len(graph) > 40
