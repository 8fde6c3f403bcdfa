"""Who may see what, and the record of it: identity, grants, masking, verification, audit."""
