"""Market surveillance for the ERC: detectors over committed blocks, and their alerts.

`Surveillance` (engine.py) follows a chain block by block (`follow.from_commit` for a
node's commit listener, `follow.from_store` to replay a store) and judges each delivery
interval once it has settled, with five detectors, one module each: `wash` (wash and
circular trading among linked accounts), `spoofing` (spoofing and layering), `marking`
(marking the gate), `withholding` (capacity withholding) and `market_power` (HHI and
pivotal participants per zone). Their thresholds are the ERC's `SurveillanceSettings`.
See docs/surveillance.md."""

from gridtokenx.surveillance.alerts import Alert, Detector, Evidence
from gridtokenx.surveillance.engine import DETECTORS, Surveillance, select
from gridtokenx.surveillance.settings import SurveillanceSettings

__all__ = ["DETECTORS", "Alert", "Detector", "Evidence", "Surveillance", "SurveillanceSettings",
           "select"]  # fmt: skip
