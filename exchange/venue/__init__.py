"""The simulated exchange behind ``run_venue``: a FIX 4.4 acceptor with its own SQLite journal."""
