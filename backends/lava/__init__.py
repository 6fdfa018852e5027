"""The Lava backend: Loihi 2 through Lava, run in a worker process under Python 3.10."""
