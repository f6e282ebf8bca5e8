from ._page import (
    Dashboard as Dashboard,
    DashboardReply as DashboardReply,
)
from ._top import (
    TopView as TopView,
    fetch_top_view as fetch_top_view,
    render_top as render_top,
    run_top as run_top,
)
