"""The recording layer: the background :class:`~llmreq_mongo.Recorder`.

It batches records built by the documents layer's write path, retries them,
and keeps what it cannot write in a spill file for replay.
"""
