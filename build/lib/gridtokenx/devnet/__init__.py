"""Local devnets: homes on 127.0.0.1, nodes as processes, and an in-process observer."""
