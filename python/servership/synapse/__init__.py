"""servership for Synapse: the module class to name in ``homeserver.yaml``.

    modules:
      - module: servership.synapse.ServershipModule
        config:
          store_path: /var/lib/synapse/servership.db

See ``docs/synapse.md`` for every setting.
"""

from .module import ServershipModule

__all__ = ["ServershipModule"]
