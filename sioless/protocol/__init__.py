"""Pure codecs for the wire protocols: no Django, no I/O."""
