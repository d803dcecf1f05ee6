"""Command-line apps. Thin layers over the library: parse argv, call the library, print."""
