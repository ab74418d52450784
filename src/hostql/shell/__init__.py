"""The osqueryi-compatible shell: ``hostql shell``.

``main`` parses the command line and runs SQL without a prompt, ``repl`` is
the interactive prompt, ``printer`` the output formats and ``dotcommands`` the
``.tables``/``.mode`` family.  Nothing is imported here so that importing a
submodule stays cheap.
"""
