"""Authorization in one place: who may do what to which call, conversation or message.

:mod:`hotline.authz.policy` is the pure decision (actor, object, action) -> allowed or
refused with a status; :mod:`hotline.authz.facts` reads from the store what the policy
needs about an object; :mod:`hotline.authz.guard` asks the policy for the operator
edges (console and operator API) and logs each refusal once; :mod:`hotline.authz.tokens`
keeps the per-operator API tokens. Nothing here imports a web framework.
"""
