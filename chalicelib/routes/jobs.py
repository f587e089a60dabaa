"""Routes of the background jobs: an admin follows the progress of the bulk work a change started."""
from chalice import Blueprint

from chalicelib import jobs
from chalicelib.http import admin, json_response, language

bp = Blueprint(__name__)
admin_route = admin(bp)


@admin_route("/admin/jobs/{job_id}", methods=["GET"])
def job(job_id):
    return json_response(jobs.view(jobs.load(job_id), language(bp.current_request)))
