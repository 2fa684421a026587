"""The tracking journal: operations as typed, versioned records (``ops``), kept in the model
directory (``spool``), delivered in order by a thread that never dies (``worker``), each sent as
MLflow documents it (``delivery``); ``sync`` delivers what a training left and reconciles the run
with ``elistimator.json``; ``local`` is what the model directory still holds."""
