from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import dashboard, sumup

app_name = "accounts"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("sumup/connect/", sumup.connect, name="sumup_connect"),
    path("sumup/callback/", sumup.callback, name="sumup_callback"),
    path("sumup/merchant/", sumup.choose_merchant, name="sumup_choose_merchant"),
    path("sumup/disconnect/", sumup.disconnect, name="sumup_disconnect"),
]
