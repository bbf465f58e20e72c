"""Reading the API's refusals, for every client (the console, the CLI, upstream systems in
Python): a failed call carries a google.rpc.Status in its `grpc-status-details-bin` trailer
whose details hold one google.rpc.ErrorInfo (reason, domain "cardstation.v1", metadata). Part
of the API contract, beside the generated code, so a client needs nothing of the server."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def error_info(rpc_error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail of a failed call, or None when the server sent none."""
    try:
        status = rpc_status.from_call(rpc_error)
    except (ValueError, AttributeError):
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
