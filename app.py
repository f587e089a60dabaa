"""The Klassen meetups service: wires the capability blueprints and the schedules to one Chalice app."""
from chalice import Chalice, Rate

from chalicelib.routes import catalogue, digests, handovers, registrations

app = Chalice(app_name="klassen-meetups")
app.register_blueprint(catalogue.bp)
app.register_blueprint(registrations.bp)
app.register_blueprint(digests.bp)
app.register_blueprint(handovers.bp)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def retry_outbox(event):
    """Sends what a request could not: the outbox retry (EventBridge delivers at least once;
    each message is claimed before it is sent)."""
    from chalicelib import outbox
    return outbox.deliver_due()


@app.schedule(Rate(1, unit=Rate.HOURS))
def send_digests(event):
    """The organisers' digests: each due organiser gets this period's digest, once (every
    organiser's period is claimed with a conditional write before anything is sent)."""
    from chalicelib import digest
    return digest.run()
