import sys

try:
    from api.cli.main import main

    main()
except KeyboardInterrupt:
    # Ctrl-C before a command ran (while its modules loaded) or after it ended: nothing of
    # it was written. During a command typer ends it, and main says so.
    sys.stderr.write("interrupted (Ctrl-C)\n")
    sys.exit(130)
