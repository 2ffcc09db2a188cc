"""Device agent: links, model store, dispatch. MicroPython-safe; never imports kpdev.host."""
