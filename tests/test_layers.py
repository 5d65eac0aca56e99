"""The import structure: no cycles between cacheplug's modules, deferred imports included.

The layers themselves are checked by ``lint-imports`` (``.importlinter``, ``make imports``);
its layers contract lets siblings joined by ``:`` import each other, so cycles are checked
here. Imports under ``TYPE_CHECKING`` never run and may point both ways (a module naming
the type of the object it is handed).
"""

from __future__ import annotations

import grimp


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph("cacheplug", cache_dir=None, exclude_type_checking_imports=True)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
