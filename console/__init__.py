"""The operators' web console: the station's screen in the browser, zh-CN first.

A client of the public gRPC API only (it forwards each operator's own token), so the API is
proven to suffice for an operator UI. Starlette + Jinja2 + vendored htmx 2.0 with its SSE
extension; events are bridged from WatchIssuance. No domain logic lives here.
"""
