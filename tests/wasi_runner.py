"""Cargo test runner for wasm32-wasip1: runs a test binary under Wasmtime (from PyPI).

Used as CARGO_TARGET_WASM32_WASIP1_RUNNER so the core's unit tests also run as wasm.
"""
import sys

from wasmtime import Engine, Linker, Module, Store, WasiConfig, ExitTrap


def main() -> int:
    wasm, *args = sys.argv[1:]
    engine = Engine()
    store = Store(engine)
    wasi = WasiConfig()
    wasi.argv = [wasm, *args]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.inherit_env()
    store.set_wasi(wasi)
    linker = Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, Module.from_file(engine, wasm))
    try:
        instance.exports(store)["_start"](store)
    except ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
