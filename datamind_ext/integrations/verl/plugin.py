"""Target of the ``verl.plugins`` entry point: ``import verl`` in any process (driver, Ray
TaskRunner, every worker) imports this module, which registers datamind_ext's components."""

from datamind_ext.integrations.verl.registration import register_all

register_all()
