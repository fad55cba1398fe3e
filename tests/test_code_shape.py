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
