"""Hardware profiles: the limits a mapping must respect and the energy each operation costs."""
