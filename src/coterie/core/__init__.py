"""Core runtime pieces shared by every component: errors, advertisements, links."""
