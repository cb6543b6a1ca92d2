"""The Synapse lab: real Synapses on loopback (``lab``), the rogue homeserver (``rogue``), the
federation helpers both use (``federation``) and MSC4358's seed scenario built from them
(``scenario``)."""
