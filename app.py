"""The Klassen meetups service: wires the capability blueprints to one Chalice app."""
from chalice import Chalice

from chalicelib.routes import catalogue, registrations

app = Chalice(app_name="klassen-meetups")
app.register_blueprint(catalogue.bp)
app.register_blueprint(registrations.bp)
