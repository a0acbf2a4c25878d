"""`python -m cronkeeper` behaves like the `cronkeeper` command."""

from cronkeeper.cli.main import main

if __name__ == "__main__":
    main()
