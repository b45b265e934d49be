import sys

from gpu_app.memory import cap_malloc_arenas

# Before any thread exists: glibc fixes its heap limit the first time threads contend.
cap_malloc_arenas()

from gpu_app.cli import main  # noqa: E402

sys.exit(main())
