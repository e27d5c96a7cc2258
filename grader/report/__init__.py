"""Reports, written only by the trusted parent and always atomically (temporary file + rename)."""
from .atomic import sweep_leftovers, write_atomic, write_json
from .feedback import render_feedback
from .gradebook import render_gradebook
from .github import github_annotations, github_summary
from .junit import render_junit
from .summary import render_summary, render_text

__all__ = ["sweep_leftovers", "write_atomic", "write_json", "render_feedback", "render_gradebook", "github_annotations",
           "github_summary", "render_junit", "render_summary", "render_text"]
