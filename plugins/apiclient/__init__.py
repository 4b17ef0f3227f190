"""The API client both hooks use: JSON over HTTP with retries, throttle, timeouts, validated records,
errors that name the API, and paging as strategy objects.

``transport`` (``JsonApiHook``, ``JsonListing``, ``HookStats``), ``settings`` (``ApiSettings``),
``paging`` (``PageNumberTotal``, ``PageUntilShort``, ``SplitWindows``), ``progress`` (``Progress``:
a listing's lines in the task log), ``retry``, ``throttle``, ``urls``, ``errors``, ``records``
(``Record``), ``masking``. Nothing is imported here: the transport
imports Airflow, whose provider discovery imports the hooks, which import this package's modules.
"""
