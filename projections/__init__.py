"""Read models: balances, holds and the 30-day window, cards, anomalies, token totals.

``ProjectionRunner`` keeps them in step with the log; ``views.view`` is the balance model
itself, as of any business time. (The expiry sweeper, which writes to the log, is a command:
``adapters.service.sweeper``.)
"""

from projections.backends import ProjectionFailedError
from projections.book import AccountBook
from projections.runner import ProjectionRunner
from projections.views import AccountView, Balance, CardView, HoldView, TokenTotal, view

__all__ = ["AccountBook", "AccountView", "Balance", "CardView", "HoldView",
           "ProjectionFailedError", "ProjectionRunner", "TokenTotal", "view"]
