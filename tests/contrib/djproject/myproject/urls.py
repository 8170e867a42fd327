from app01 import views
from django.urls import path

urlpatterns = [
    path("add/", views.handler),
    path("notes/", views.notes),
]
