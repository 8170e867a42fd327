from django.http import JsonResponse

from app01.models import Note
from app01.tasks import add


def handler(request):
    result = add.delay(3, 4)
    return JsonResponse({"task_id": result.id})


def notes(request):
    return JsonResponse({"notes": list(Note.objects.order_by("id").values_list("text",
                                                                               flat=True))})
