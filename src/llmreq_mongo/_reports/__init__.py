"""The reports layer: analytics over the history and the session rollups.

Reports read through the documents layer and the queries layer's filters;
the public face of the analytics is :mod:`llmreq_mongo.analytics`.
"""
