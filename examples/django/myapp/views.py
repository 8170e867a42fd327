from django.http import JsonResponse

from myapp.models import Visit
from myapp.tasks import add, record_visit


def handler(request):
    result = add.delay(3, 4)
    # sent once the request's transaction (if any) commits
    record_visit.delay_on_commit(request.path)
    return JsonResponse({"task_id": result.id})


def visits(request):
    return JsonResponse({"visits": [str(v) for v in Visit.objects.order_by("-id")[:20]]})
