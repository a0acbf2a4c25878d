"""The `cronkeeper` command (Typer): parse → service or API call → render."""
