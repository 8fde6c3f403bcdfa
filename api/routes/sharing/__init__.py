"""Routes of the sharing core: identity, requests and grants, reads, verification, audit."""
